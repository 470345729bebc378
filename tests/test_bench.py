"""`haste-onnx bench` and `haste_onnx.bench`: structure and consistency of the report, not speed."""
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from haste_onnx import cli
from haste_onnx.data.preprocess import prepare_images
from haste_onnx.measure.bench import BenchOptions, bench
from haste_onnx.measure.evaluate import EvalOptions, evaluate
from haste_onnx.measure.profile import match_profile
from haste_onnx.rewrite import rewrite_model
from models_inline import build, conv_w
from conftest import fake_fashion_mnist

# A residual net: stem (kept), three 3x3 convs with 16 input channels (replaced by default), a Relu after
# every conv and an Add, which onnxruntime fuses into its Conv kernels, so matching its renamed nodes is tested.
NET = """
<ir_version: 8, opset_import: ["" : 17]>
net (float[{n},1,16,16] input) => (float[{n},10] logits) {{
    a = Conv <pads = [1, 1, 1, 1]> (input, w0, b0)
    a_r = Relu (a)
    c1 = Conv <pads = [1, 1, 1, 1]> (a_r, w1, b1)
    c1_r = Relu (c1)
    c2 = Conv <pads = [1, 1, 1, 1]> (c1_r, w2, b2)
    s = Add (c2, a_r)
    s_r = Relu (s)
    c3 = Conv <pads = [1, 1, 1, 1]> (s_r, w3, b3)
    c3_r = Relu (c3)
    p = GlobalAveragePool (c3_r)
    f = Flatten (p)
    logits = Gemm <transB = 1> (f, wf, bf)
}}
"""
SHAPES = {"w0": conv_w(16, 1), "b0": [16], "w1": conv_w(16, 16), "b1": [16], "w2": conv_w(16, 16), "b2": [16],
          "w3": conv_w(32, 16), "b3": [32], "wf": [10, 32], "bf": [10]}
FAST = ["--repeats", 3, "--warmup", 1, "--profile-runs", 2, "--threads", 1]


def net_model(batch="N") -> onnx.ModelProto:
    model = build(NET.format(n=batch), SHAPES)
    for node in model.graph.node:
        node.name = node.output[0]
    return model


def save(model, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path):
    return fake_fashion_mnist(tmp_path / "fm", n_test=10)


def bench_json(argv, capsys) -> dict:
    rule = [] if {"-L", "--target-cut", "--objective", "--no-probe"} & set(map(str, argv)) else ["--no-probe"]
    code, out, err = run(["bench"] + argv + rule + FAST + ["--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_json_fields_and_consistency(tmp_path, data, capsys):
    doc = bench_json([save(net_model(), tmp_path / "net.onnx"), "--data-dir", data, "--batch", 4], capsys)
    for key in ("command", "model", "versions", "settings", "data", "batch", "rewrite", "latency_original_ms",
                "latency_rewritten_ms", "speedup", "latency", "flops", "ideal", "profile", "memory"):
        assert key in doc, key
    assert doc["command"] == "bench" and doc["versions"]["onnxruntime"]
    s = doc["settings"]
    assert (s["batch"], s["threads"], s["repeats"], s["warmup"], s["profile_runs"]) == (4, 1, 3, 1, 2)
    assert s["graph_optimization"] == "ORT_ENABLE_ALL" and not s["prebuilt"]
    assert doc["batch"] == {"images": 4, "repeated": False, "shape": [4, 1, 16, 16],
                            "inputs": {"input": [4, 1, 16, 16]}}
    assert doc["data"]["source"] == "fashion-mnist" and doc["data"]["images"] == 4

    lo, lr = doc["latency"]["original"], doc["latency"]["rewritten"]
    assert lo["n"] == lr["n"] == 3 and len(lo["samples_ms"]) == 3
    assert doc["latency_original_ms"] == lo["median_ms"] == float(np.median(lo["samples_ms"]))
    assert doc["latency_rewritten_ms"] == lr["median_ms"] == float(np.median(lr["samples_ms"]))
    assert lo["min_ms"] <= lo["p25_ms"] <= lo["median_ms"] <= lo["p75_ms"] <= lo["max_ms"]
    assert doc["speedup"] == pytest.approx(doc["latency_original_ms"] / doc["latency_rewritten_ms"], rel=1e-12)

    # the ideal speed-up comes from the counters: 1 / (1 - r), r = all-conv cut with overheads
    f, ideal = doc["flops"], doc["ideal"]
    assert len(f["layers"]) == doc["rewrite"]["replaced"] == 3
    saved = sum(r["dense_macs"] - r["haste_macs"] - r["overhead_ops"] for r in f["layers"])
    r = saved / f["original_conv_macs"]
    assert ideal["basis"] == "conv_mac_reduction_with_overheads"
    assert ideal["reduction"] == pytest.approx(r, rel=1e-12) == f["conv_mac_reduction_with_overheads"]
    assert ideal["speedup"] == pytest.approx(1 / (1 - r), rel=1e-12)
    assert ideal["measured_over_ideal"] == pytest.approx(doc["speedup"] / ideal["speedup"], rel=1e-12)
    share = ideal["conv_share_original"]
    assert 0 < share <= 1
    assert ideal["amdahl_speedup"] == pytest.approx(1 / ((1 - share) + share * (1 - r)), rel=1e-12)

    # per layer: every conv matched on both sides, one row per HasteConv with its own counters
    p = doc["profile"]
    rows = p["layers"]
    assert [row["node"] for row in rows] == ["a", "c1", "c2", "c3"]
    assert [row["rewritten_op"] for row in rows] == ["Conv", "HasteConv", "HasteConv", "HasteConv"]
    for row in rows:
        assert row["original_ms"] > 0 and row["rewritten_ms"] > 0
        assert row["speedup"] == pytest.approx(row["original_ms"] / row["rewritten_ms"])
    assert len({row["original_profile_node"] for row in rows}) == 4
    assert [row["rewritten_profile_node"] for row in rows[1:]] == ["c1", "c2", "c3"]
    cuts = {lay["node"]: lay["mac_reduction"] for lay in f["layers"]}
    for row in rows[1:]:
        assert row["mac_cut"] == cuts[row["node"]]
    assert p["original"]["matched_layers"] == p["rewritten"]["matched_layers"] == 4
    for side in (p["original"], p["rewritten"]):
        assert side["conv_ms"] + side["other_ms"] == pytest.approx(side["kernel_ms"])
        assert side["other_ms"] == pytest.approx(sum(side["other_by_op"].values()))
        assert not any("unmatched" in op for op in side["other_by_op"])
    # the Relus after the HasteConvs are fused into them (rewrite/fuse_activation.py), as into onnxruntime's Conv
    assert "Relu" not in p["rewritten"]["other_by_op"]
    assert [row["rewritten_fused"] for row in rows[1:]] == ["Relu", "Add+Relu", "Relu"]
    assert [row["rewritten_fused"] for row in rows[1:]] == [row["original_fused"] for row in rows[1:]]

    m = doc["memory"]
    assert m["original_peak_mb"] > 0 and m["rewritten_peak_mb"] > 0
    assert m["ratio"] == pytest.approx(m["rewritten_peak_mb"] / m["original_peak_mb"])


def test_api_counters_match_evaluate(tmp_path):
    model = net_model()
    raw = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    x = prepare_images(raw, model)
    doc = bench(model, x, BenchOptions(batch=5, threads=1, warmup=0, repeats=2, profile_runs=0, memory=False))
    assert doc["batch"]["repeated"] and doc["batch"]["images"] == 5
    assert doc["profile"] is None and doc["memory"] is None and doc["ideal"]["conv_share_original"] is None
    xb = np.concatenate([x, x])[:5]
    ev = evaluate(model, xb, np.zeros(5, np.int64), EvalOptions(batch=5, threads=1, bootstrap=10))
    t = ev["runs"][0]["totals"]
    assert doc["ideal"]["reduction"] == pytest.approx(t["conv_mac_reduction_with_overheads"], rel=1e-12)
    assert doc["flops"]["conv_mac_reduction"] == pytest.approx(t["conv_mac_reduction"], rel=1e-12)


def test_rewritten_model_is_compared_with_its_stripped_copy(tmp_path, data, capsys):
    rewritten, _ = rewrite_model(net_model())
    doc = bench_json([save(rewritten, tmp_path / "haste.onnx"), "--data-dir", data, "--no-memory"], capsys)
    assert doc["settings"]["prebuilt"] and doc["settings"]["plan"] == "from the model"
    assert doc["rewrite"] is None and doc["memory"] is None
    rows = doc["profile"]["layers"]
    assert [row["node"] for row in rows if row["replaced"]] == ["c1", "c2", "c3"]
    assert all(row["original_ms"] > 0 and row["rewritten_ms"] > 0 for row in rows)
    assert len(doc["flops"]["layers"]) == 3 and doc["ideal"]["speedup"] > 0


def test_text_report(tmp_path, data, capsys):
    code, out, err = run(["bench", "--no-probe", save(net_model(), tmp_path / "net.onnx"), "--data-dir", data, "--cpu-time"]
                         + FAST, capsys)
    assert code == 0, err
    assert "timing:" in err  # progress goes to stderr
    for text in ("model:", "rewrite:  plan: L=", "input:    batch 1 of fashion-mnist test split", "clock: process CPU time",
                 "speed-up:", "ideal:", "= 1/(1 - r)", "per layer", "HasteConv", "other ops", "peak memory"):
        assert text in out, text
    assert "Conv +Relu" in out


def test_match_profile_follows_nchwc_names():
    model = net_model()
    # names as onnxruntime's NCHWc transformer gives them; c2 took the Add (4 inputs) and is named after its output
    w16, w32 = [16, 16, 3, 3], [32, 16, 3, 3]
    prof = {"a_r_nchwc": {"op": "Conv", "ms": 1.0, "inputs": [[1, 1, 16, 16], [16, 1, 3, 3], [16]]},
            "c1_r_nchwc": {"op": "Conv", "ms": 2.0, "inputs": [[1, 16, 16, 16], w16, [16]]},
            "c2_nchwc": {"op": "Conv", "ms": 3.0, "inputs": [[1, 16, 16, 16], w16, [16], [1, 16, 16, 16]]},
            "c3_r_nchwc": {"op": "Conv", "ms": 4.0, "inputs": [[1, 16, 16, 16], w32, [32]]},
            "ReorderOutput_token_1": {"op": "ReorderOutput", "ms": 0.5, "inputs": []},
            "p": {"op": "GlobalAveragePool", "ms": 0.25, "inputs": []}}
    matched, other = match_profile(model, prof)
    assert {i: m["name"] for i, m in matched.items()} == {0: "a_r_nchwc", 1: "c1_r_nchwc", 2: "c2_nchwc",
                                                          3: "c3_r_nchwc"}
    assert [matched[i]["fused"] for i in range(4)] == ["Relu", "Relu", "Add+Relu", "Relu"]
    assert other == {"ReorderOutput": 0.5, "GlobalAveragePool": 0.25}
    # a Conv event whose weight shape fits no layer is not matched
    prof["c3_r_nchwc"]["inputs"][1] = [8, 16, 3, 3]
    matched, other = match_profile(model, prof)
    assert 3 not in matched and other["Conv (unmatched)"] == 4.0


def test_missing_model(tmp_path, data, capsys):
    code, _, err = run(["bench", "--no-probe", tmp_path / "missing.onnx", "--data-dir", data], capsys)
    assert code == 3 and len(err.strip().splitlines()) == 1 and "missing.onnx" in err


@pytest.mark.parametrize("option", [["--batch", "0"], ["--threads", "0"], ["--repeats", "0"], ["--batch", "x"]])
def test_bad_options(tmp_path, option, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--no-probe", str(tmp_path / "net.onnx")] + option)
    assert exc.value.code == 2


def test_fixed_batch_mismatch(tmp_path, data, capsys):
    code, _, err = run(["bench", "--no-probe", save(net_model(batch=1), tmp_path / "b1.onnx"), "--data-dir", data,
                        "--batch", 2] + FAST, capsys)
    assert code == 3 and "fixed batch of 1" in err


def test_nothing_to_replace(tmp_path, data, capsys):
    code, _, err = run(["bench", "--no-probe", save(net_model(), tmp_path / "net.onnx"), "--data-dir", data,
                        "--min-channels", 64] + FAST, capsys)
    assert code == 5, err


def test_missing_data(tmp_path, capsys):
    code, _, err = run(["bench", "--no-probe", save(net_model(), tmp_path / "net.onnx"), "--data-dir", tmp_path / "none"], capsys)
    assert code == 3 and "Fashion-MNIST" in err
