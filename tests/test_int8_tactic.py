"""int8 as a tactic of the plan (haste_onnx/quantize): onnxruntime's quantization per layer, composed with the
static passes and HASTE in one rewrite."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from conftest import image_folder, net_model
from haste_onnx import cli
from haste_onnx.probe.fidelity import FidelityTarget, most_decided
from haste_onnx.quantize import Int8Options, choose_int8, int8_images
from haste_onnx.quantize.ort_int8 import float_island, name_nodes, weighted_layers
from haste_onnx.quantize.sensitivity import most_hurt_first, upstream_layers
from haste_onnx.quantize.tactic import HURTS, READS_FLOAT

# Three 3x3 convs and a pooled 8-way score; channel 0 of `first`'s output is always 0.
TWO_CONVS = """
<ir_version: 8, opset_import: ["" : 17]>
two (float[N,8,16,16] X) => (float[N,8] Y) {
    first = Conv <pads = [1, 1, 1, 1]> (X, w_0, b_0)
    first_r = Relu (first)
    a = Conv <pads = [1, 1, 1, 1]> (first_r, w_a, b_a)
    a_r = Relu (a)
    b = Conv <pads = [1, 1, 1, 1]> (a_r, w_b, b_b)
    p = GlobalAveragePool (b)
    Y = Flatten (p)
}
"""


def two_convs(outlier: bool) -> onnx.ModelProto:
    """With `outlier`, every filter of `a` has a weight of 1000 on input channel 0 (always 0): per-channel int8
    weights then get a scale of 1000/127 and its real weights (about 0.1) all round to 0: `a` breaks."""
    rng = np.random.default_rng(3)
    w_0, b_0 = rng.normal(0, 0.2, (8, 8, 3, 3)), rng.normal(0, 0.1, 8)
    w_0[0], b_0[0] = 0.0, 0.0
    w_a = rng.normal(0, 0.2, (8, 8, 3, 3))
    if outlier:
        w_a[:, 0, 1, 1] = 1000.0
    model = onnx.parser.parse_model(TWO_CONVS)
    for name, value in (("w_0", w_0), ("b_0", b_0), ("w_a", w_a), ("b_a", rng.normal(0, 0.1, 8)), ("w_b", rng.normal(0, 0.2, (8, 8, 3, 3))),
                        ("b_b", rng.normal(0, 0.1, 8))):
        model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    return model


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 8, 16, 16), dtype=np.float32)


def untimed(**target) -> Int8Options:
    return Int8Options(fidelity=FidelityTarget(**target), timed=False, threads=1)


def test_a_layer_that_quantization_breaks_stays_float():
    model = two_convs(outlier=True)
    choice = choose_int8(model, images(64, 1), "test images", images(128, 2), untimed(min_agreement=0.95))
    first, a, b = weighted_layers(name_nodes(model))
    assert choice.model is not None, choice.reason
    assert choice.layers[first]["tactic"] == "int8"
    assert choice.layers[a]["tactic"] == "float" and choice.layers[a]["reason"] == HURTS
    assert choice.layers[b]["tactic"] == "int8"
    assert choice.search[0]["met"] is False and choice.search[-1]["met"] is True
    assert FidelityTarget(min_agreement=0.95).met(choice.fidelity)
    # the kept layer keeps its float weight, and onnxruntime does not fuse it into int8 after all
    node = next(n for n in choice.model.graph.node if n.name == a)
    assert node.op_type == "Conv" and node.input[1] == "w_a"
    optimized = _optimized(choice.model)
    fused = [n.name for n in optimized.graph.node if n.op_type == "QLinearConv"]
    assert len(fused) == 2 and fused[0].startswith(first) and fused[1].startswith(b)


def _optimized(model: onnx.ModelProto) -> onnx.ModelProto:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def test_harmless_quantization_takes_every_layer():
    model = two_convs(outlier=False)
    choice = choose_int8(model, images(64, 1), "test images", images(128, 2), untimed(min_agreement=0.9))
    assert choice.model is not None
    assert [r["tactic"] for r in choice.layers.values()] == ["int8", "int8", "int8"]
    assert len(choice.search) == 1 and choice.search[0]["kept_float"] == 0
    assert sum(n.op_type == "QuantizeLinear" for n in choice.model.graph.node) >= 2
    assert "all 3 weighted layer(s) quantized" in choice.summary_line()


def test_an_unreachable_target_uses_no_int8():
    model = two_convs(outlier=False)
    choice = choose_int8(model, images(64, 1), "test images", images(32, 2), untimed(max_error=0.0))
    assert choice.model is None and "only with every weighted layer float" in choice.reason
    assert [r["tactic"] for r in choice.layers.values()] == ["float", "float", "float"]
    assert "int8: not used" in choice.summary_line()


def test_float_island_takes_the_readers_of_a_float_layer():
    model = name_nodes(two_convs(outlier=False))
    _, a, b = weighted_layers(model)
    relu = [n.name for n in model.graph.node if n.op_type == "Relu"][1]
    assert float_island(model, [a]) == {a, relu}
    assert float_island(model, [b]) == {b, next(n.name for n in model.graph.node if n.op_type == "GlobalAveragePool")}


def test_sensitivity_orders_by_added_error_and_finds_upstream_layers():
    model = name_nodes(net_model())
    layers = weighted_layers(model)
    ups = upstream_layers(model, layers)
    assert ups[layers[0]] == [] and ups[layers[1]] == [layers[0]] and ups[layers[-1]] == [layers[-2]]
    errors = {"x": {"added": 0.1}, "y": {"added": 0.5}, "z": {"added": -0.2}}
    assert most_hurt_first(errors) == ["y", "x", "z"]


def test_most_decided_keeps_the_images_with_the_largest_margin():
    model = net_model()
    x = np.random.default_rng(0).standard_normal((40, 1, 12, 12)).astype(np.float32)
    kept = most_decided(model, x, 10, threads=1)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": x})[0]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(p, 1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert len(kept) == 10 and set(map(bytes, kept)) == {bytes(x[i]) for i in np.argsort(-margin)[:10]}


def test_calibration_is_data_free_by_default_and_from_the_folder_when_given(tmp_path):
    from haste_onnx.model_inputs import InputSpec
    from haste_onnx.probe import ProbeOptions

    model = net_model(16, 16)
    cal, text, check, check_text = int8_images(model, ProbeOptions(), count=12, threads=1)
    assert cal.shape == (12, 1, 16, 16) and check.shape == (256, 1, 16, 16)
    assert "data-free" in text and "most decided of 512" in check_text
    assert not any(np.array_equal(c, k) for c in cal for k in check[:20])  # different images
    folder = image_folder(tmp_path / "calib", count=5, size=(20, 20))
    probe = ProbeOptions(inputs=InputSpec(calibration=str(folder)))
    cal, text, check, check_text = int8_images(model, probe, threads=1)
    assert cal.shape == (5, 1, 16, 16) and text.startswith(f"data-light (5 calibration image(s) from {folder}")
    assert np.array_equal(cal, check) and "same 5" in check_text


def _cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


WIDE = """
<ir_version: 8, opset_import: ["" : 17]>
wide (float[N,3,32,32] X) => (float[N,10] Y) {
    a = Conv <pads = [1, 1, 1, 1]> (X, w_a, b_a)
    a_r = Relu (a)
    b = Conv <pads = [1, 1, 1, 1]> (a_r, w_b, b_b)
    b_r = Relu (b)
    c = Conv <pads = [1, 1, 1, 1]> (b_r, w_c, b_c)
    c_r = Relu (c)
    p = GlobalAveragePool (c_r)
    f = Flatten (p)
    Y = Gemm <transB = 1> (f, w_f, b_f)
}
"""


def wide_file(tmp_path):
    """64-channel 3x3 convs at 32x32, where int8 pays on any x86 machine."""
    from models_inline import build, conv_w

    model = build(WIDE, {"w_a": conv_w(64, 3), "b_a": [64], "w_b": conv_w(64, 64), "b_b": [64],
                         "w_c": conv_w(64, 64), "b_c": [64], "w_f": [10, 64], "b_f": [10]})
    path = tmp_path / "wide.onnx"
    onnx.save(model, str(path))
    return path


def test_rewrite_int8_writes_a_plain_quantized_model_with_the_per_layer_table(tmp_path, capsys):
    src, dst = wide_file(tmp_path), tmp_path / "out.onnx"
    before = src.read_bytes()
    code, out, err = _cli(["rewrite", src, dst, "--int8", "--int8-images", "32", "--min-agreement", "0.9",
                           "--range", "0,1", "--mean", "0", "--std", "1", "--json"], capsys)
    assert code == 0, err
    assert src.read_bytes() == before
    doc = json.loads(out)["int8"]
    assert doc["used"] and doc["calibration"].startswith("32 synthetic probe images (data-free)")
    assert all(r["float_ms"] is not None and r["int8_ms"] is not None for r in doc["layers"].values())
    assert doc["speed"]["ratio"]["median"] > 1.0
    model = onnx.load(str(dst))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert not any(n.domain == "haste" for n in model.graph.node)
    ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])  # no op library needed
    code, out, err = _cli(["rewrite", src, tmp_path / "o2.onnx", "--int8", "--int8-images", "32", "--min-agreement",
                           "0.9", "--range", "0,1", "--mean", "0", "--std", "1"], capsys)
    assert code == 0, err
    assert "tactic  float ms  int8 ms" in out and "weighted layer(s) quantized" in out and "data-free" in out
    assert "warning: int8 was calibrated and checked on synthetic images only" in out
    code, out, err = _cli(["info", dst], capsys)
    assert code == 0 and "int8 (onnxruntime's quantize_static, QDQ per-channel U8S8): " in out


def test_static_pass_int8_and_haste_compose_in_one_rewrite(tmp_path, capsys):
    src, dst = wide_file(tmp_path), tmp_path / "out.onnx"
    code, out, err = _cli(["rewrite", src, dst, "--method", "qsfm+haste", "--static-cut", "0.3", "--int8",
                           "--int8-images", "32", "--min-agreement", "0.8", "--max-error", "0.5", "--range", "0,1",
                           "--mean", "0", "--std", "1", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["static"]["conv_macs_after"] < doc["static"]["conv_macs_before"]
    assert doc["int8"]["used"], doc["int8"]["reason"]
    model = onnx.load(str(dst))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    # the narrower layers were quantized: their int8 weights are the static pass's smaller ones
    shapes = [list(i.dims) for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert shapes and min(s[0] for s in shapes) < 64


def test_int8_options_are_refused_where_they_mean_nothing(tmp_path, capsys):
    src = wide_file(tmp_path)
    code, _, err = _cli(["rewrite", src, tmp_path / "o.onnx", "--int8-images", "8"], capsys)
    assert code == 2 and "--int8-images is for --int8" in err
    code, _, err = _cli(["rewrite", src, tmp_path / "o.onnx", "--int8", "--plan", tmp_path / "p.json"], capsys)
    assert code == 2 and "--int8" in err and "--plan" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli(["rewrite", src, tmp_path / "o.onnx", "--int8", "--steerable"], capsys)
    assert code == 2 and "--steerable is for --method haste without --int8" in err


def test_haste_takes_only_the_layers_int8_left_float():
    from haste_onnx.plan import HashingOptions, Policy
    from haste_onnx.rewrite import rewrite_model
    from haste_onnx.runtime import inference_session

    model = two_convs(outlier=True)
    choice = choose_int8(model, images(64, 1), "test images", images(128, 2), untimed(min_agreement=0.95))
    _, a, _ = weighted_layers(name_nodes(model))
    rewritten, report = rewrite_model(choice.model, HashingOptions(hyperplanes=4), Policy(min_channels=4))
    haste = [n.name for n in rewritten.graph.node if n.op_type == "HasteConv"]
    assert haste == [a] and report.count("replaced") == 1  # the int8 layers' weights are not static for HASTE
    x = images(4, 5)
    y = inference_session(rewritten, threads=1).run(None, {"X": x})[0]
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
    assert y.shape == ref.shape and np.isfinite(y).all()


def test_detections_count_in_the_target_and_unseen_detections_refuse_int8():
    from conftest import detect_model

    small = {"y": {"mean": 0.01, "max": 0.02}}
    target = FidelityTarget()
    assert target.met({"top1_agreement": None, "detections_kept": None, "relative_error": small})
    assert not target.met({"top1_agreement": None, "detections_kept": 0.5, "relative_error": small})
    assert target.met({"top1_agreement": None, "detections_kept": 1.0, "relative_error": small})
    model = detect_model()
    for init in model.graph.initializer:  # scores of about 0: the original finds no box on any image
        if init.name == "bh":
            bias = numpy_helper.to_array(init).copy()
            bias[4:] = -30.0
            init.CopyFrom(numpy_helper.from_array(bias, "bh"))
    x = np.random.default_rng(0).random((16, 3, 16, 16), dtype=np.float32)
    choice = choose_int8(model, x, "test images", x, untimed())
    assert choice.model is None and "detects objects" in choice.reason and "--calibration" in choice.reason
    assert choice.fidelity["detection_outputs"] == 1 and choice.fidelity["detections_kept"] is None


def test_nothing_to_do_names_why_int8_was_not_used(tmp_path, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(two_convs(outlier=False), str(src))
    code, _, err = _cli(["rewrite", src, tmp_path / "o.onnx", "--int8", "--int8-images", "8", "--max-error", "0",
                         "--range", "0,1", "--mean", "0", "--std", "1"], capsys)
    assert code == 5 and "int8 not used: " in err and "HASTE: " in err and len(err.strip().splitlines()) == 1
