"""RED and QSFM (haste_onnx/static) and `rewrite --method`: plain, smaller models that load without the op."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import duplicate_rows, net_model, run_model
from haste_onnx import cli
from haste_onnx.static.red import cluster, hash_weights
from haste_onnx.static.run import StaticOptions, static_compress


def _cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_hashing_leaves_few_distinct_values_and_zero_resolution_none():
    w = np.random.default_rng(0).normal(size=(32, 16, 3, 3)).astype(np.float32)
    hashed = hash_weights(w, 2.0)
    assert hashed.shape == w.shape and len(np.unique(hashed)) < 20
    assert np.array_equal(hash_weights(w, 0.0), w)


def test_cluster_merges_identical_and_near_vectors_only():
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.05]])
    assert cluster(v, 0.0) == {1: 0}
    assert cluster(v, 0.1) == {1: 0, 2: 3}


def test_red_without_hashing_merges_duplicate_filters_exactly(rng):
    model = duplicate_rows(net_model(), {"w1", "b1"}, [(5, 2), (9, 2)])
    out, report = static_compress(model, StaticOptions("red", red_resolution=0.0))
    x = rng.normal(size=(4, 1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(run_model(model, x)[0], run_model(out, x)[0], rtol=1e-5, atol=1e-5)
    row = next(r for r in report.rows if r.node == "c1")
    assert row.channels_out == "16 -> 14" and "merged 2" in row.note
    assert report.macs_after < report.macs_before


def test_qsfm_removes_a_scaled_copy_exactly_before_tanh_free_readers(rng):
    """Channel 3 of c2 (read after Tanh) is c2's channel 0: QSFM's first choice, compensated exactly."""
    model = duplicate_rows(net_model(), {"w2", "b2"}, [(3, 0)])
    x = rng.normal(size=(16, 1, 12, 12)).astype(np.float32)
    out, report = static_compress(model, StaticOptions("qsfm", cut=0.001), images=x)
    row = next(r for r in report.rows if r.node == "c2")
    assert row.channels_out == "24 -> 23"
    np.testing.assert_allclose(run_model(model, x)[0], run_model(out, x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["red", "qsfm"])
def test_rewrite_method_writes_a_plain_checked_model(tmp_path, capsys, method):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(duplicate_rows(net_model(), {"w1", "b1"}, [(5, 2)]), str(src))
    extra = ["--red-resolution", "0"] if method == "red" else ["--static-cut", "0.2", "--probe-images", "16"]
    code, out, err = _cli(["rewrite", src, dst, "--method", method, *extra, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["static"]["conv_macs_after"] < doc["static"]["conv_macs_before"]
    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)
    assert not any(n.domain == "haste" for n in model.graph.node)
    ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])  # no op library


def test_static_knobs_of_another_method_are_refused(tmp_path, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(net_model(), str(src))
    code, _, err = _cli(["rewrite", src, tmp_path / "o.onnx", "--method", "red", "--static-cut", "0.3"], capsys)
    assert code == 2 and "--static-cut" in err
    code, _, err = _cli(["rewrite", src, tmp_path / "o.onnx", "--red-threshold", "0.1"], capsys)
    assert code == 2


def test_qsfm_then_haste_in_one_rewrite(tmp_path, capsys):
    src, dst, plan = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "plan.json"
    onnx.save(net_model(), str(src))
    code, out, err = _cli(["rewrite", src, dst, "--method", "qsfm+haste", "--static-cut", "0.2", "--no-probe",
                           "--save-plan", plan], capsys)
    assert code == 0, err
    assert "qsfm:" in out
    saved = json.loads(plan.read_text())
    assert saved["origin"]["static"]["method"] == "qsfm"
    assert any(n.op_type == "HasteConv" for n in onnx.load(str(dst)).graph.node)


@pytest.mark.parametrize("method", ["qsfm", "red+haste"])
def test_eval_and_bench_take_the_method(tmp_path, capsys, method):
    from conftest import fake_fashion_mnist

    data = fake_fashion_mnist(tmp_path / "fmnist", n_test=24)
    src = tmp_path / "in.onnx"
    onnx.save(duplicate_rows(net_model(), {"w1", "b1"}, [(5, 2)]), str(src))
    knobs = ["--static-cut", "0.2", "--probe-images", "16"] if method == "qsfm" else ["--red-resolution", "0", "-L",
                                                                                       "8"]
    code, out, err = _cli(["eval", src, "--data-dir", data, "--limit", 24, "--method", method, *knobs, "--json"],
                          capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["method"] == method and 0 < doc["result"]["conv_mac_reduction"] < 1
    code, out, err = _cli(["bench", src, "--data-dir", data, "--method", method, *knobs, "--repeats", 3,
                           "--warmup", 1, "--cpu-time", "--threads", 1, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["speedup"] > 0 and doc["ideal_speedup"] > 1


def test_red_merges_in_consecutive_layers_keep_both_edits(rng):
    """A layer that loses output channels and input channels in one pass gets both (centroid rows mixed
    after its input channels were merged)."""
    model = duplicate_rows(net_model(), {"w0", "b0"}, [(7, 1)])
    model = duplicate_rows(model, {"w1", "b1"}, [(5, 2)])
    out, report = static_compress(model, StaticOptions("red", red_resolution=0.0))
    row = next(r for r in report.rows if r.node == "c1")
    assert (row.channels_in, row.channels_out) == ("16 -> 15", "16 -> 15")
    x = rng.normal(size=(4, 1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(run_model(model, x)[0], run_model(out, x)[0], rtol=1e-5, atol=1e-5)


def test_info_shows_the_static_step(tmp_path, capsys):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(duplicate_rows(net_model(), {"w1", "b1"}, [(5, 2)]), str(src))
    assert _cli(["rewrite", src, dst, "--method", "red", "--red-resolution", "0"], capsys)[0] == 0
    code, out, _ = _cli(["info", dst], capsys)
    assert code == 0 and "static pass: --method red" in out and "16 -> 15" in out


def test_subgraph_reads_and_constant_weights_are_handled_with_reasons():
    from models_inline import chain_model, if_model, move_to_constants

    out, report = static_compress(if_model(weight_in_branch=True), StaticOptions("red", red_resolution=0.0))
    notes = {r.node: r.note for r in report.rows}
    assert "read inside a subgraph" in notes["stem"]  # the If's branch reads the stem's output
    assert "graph output" in notes["branch.then_branch/inner"]
    onnx.checker.check_model(out, full_check=True)
    model = chain_model()
    names = [i.name for i in model.graph.initializer]
    out, report = static_compress(move_to_constants(model, names), StaticOptions("red", red_resolution=2.0,
                                                                                  red_threshold=0.5))
    onnx.checker.check_model(out, full_check=True)


LINEAR = """
<ir_version: 8, opset_import: ["" : 17]>
lin (float[N,1,8,8] input) => (float[N,3] logits) {
    a = Conv <pads = [1, 1, 1, 1]> (input, w0, b0)
    c = Conv <pads = [1, 1, 1, 1]> (a, w1, b1)
    g = GlobalAveragePool (c)
    f = Flatten (g)
    logits = Gemm <transB = 1> (f, wf, bf)
}
"""


def test_lstsq_compensation_rebuilds_a_linear_combination_exactly(rng):
    from models_inline import build, conv_w
    from onnx import numpy_helper

    model = build(LINEAR, {"w0": conv_w(6, 1), "b0": [6], "w1": conv_w(5, 6), "b1": [5], "wf": [3, 5], "bf": [3]})
    for node in model.graph.node:
        node.name = node.output[0]
    for init in model.graph.initializer:
        if init.name in ("w0", "b0"):
            w = numpy_helper.to_array(init).copy()
            w[4] = 0.5 * w[1] + 2.0 * w[2]  # channel 4 = a mix of channels 1 and 2 (no activation between)
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    x = rng.normal(size=(16, 1, 8, 8)).astype(np.float32)
    out, report = static_compress(model, StaticOptions("qsfm", cut=0.01, compensate="lstsq", min_keep=0.8), images=x)
    assert next(r for r in report.rows if r.node == "a").channels_out == "6 -> 5"
    np.testing.assert_allclose(run_model(model, x)[0], run_model(out, x)[0], rtol=1e-3, atol=1e-3)
