"""benchmarks/int8_layers.py: the int8 pieces, the counters and the lower bound, on tiny synthetic convs."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import load_benchmark, net_model


@pytest.fixture(scope="module")
def il():
    return load_benchmark("int8_layers")


def conv_add_relu(c=8, h=10, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((c, c, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(c) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "z"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    g = helper.make_graph(nodes, "piece",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, h, h]) for n in ("x", "z")],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, h, h])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    feeds = [{"x": np.maximum(rng.standard_normal((1, c, h, h)), 0).astype(np.float32),
              "z": rng.standard_normal((1, c, h, h)).astype(np.float32)} for _ in range(4)]
    return model, feeds


def run(model, feed):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)[0]


def test_int8_piece_is_qdq_fused_and_agrees(il):
    model, feeds = conv_add_relu()
    qdq = il.quantize_piece(model, feeds)
    ops = [n.op_type for n in qdq.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "Conv" in ops
    ext = il.optimized(qdq, "extended")
    ext_ops = [n.op_type for n in ext.graph.node]
    assert "QLinearConv" in ext_ops and "Conv" not in ext_ops
    y = run(model, feeds[0])
    spread = np.abs(y).max()
    assert np.abs(run(qdq, feeds[0]) - y).max() < 0.05 * spread

    core = il.int8_core(ext)
    assert core is not None
    assert set(core.inputs) == {"x", "z"}
    assert all(v.type.tensor_type.elem_type == TensorProto.UINT8 for v in core.model.graph.input)
    assert "QuantizeLinear" not in core.ops and "DequantizeLinear" not in core.ops and "QLinearConv" in core.ops
    y8 = run(core.model, core.feed(feeds[0]))
    assert y8.dtype == np.uint8
    dq = next(n for n in ext.graph.node if n.op_type == "DequantizeLinear")
    scale, zero = float(il._const(ext, dq.input[1])), int(il._const(ext, dq.input[2]))
    assert np.abs((y8.astype(np.float32) - zero) * scale - y).max() < 0.05 * spread

    prof = il.profiled_node_ms(core.model, core.feed(feeds[0]), runs=3)
    assert prof is not None and prof["ms"] > 0 and "Transpose" not in prof["ops"]
    assert any("QLinearConv" in op for op in prof["ops"])


def test_lower_bound_terms(il):
    shares = {"gemm": 0.5, "hashing": 0.2, "write": 0.1, "gather": 0.2}
    b = il.lower_bound(haste_ms=2.0, shares=shares, int8_ms=0.8, mac_fraction=0.4, factor=4.0)
    assert b["non_gemm_ms"] == pytest.approx(1.0)
    assert b["gemm8_ms"] == pytest.approx(0.32)
    assert b["bound_ms"] == pytest.approx(1.0 / 4 + 0.32)
    assert b["bound_over_int8"] == pytest.approx((0.25 + 0.32) / 0.8)
    # per-stage factors are at most 4: that bound is never below the uniform one, and both below the float time
    f = il.STAGE_FACTORS
    stages = 2.0 * 0.2 / f["hashing"] + 2.0 * 0.1 / f["write"] + 2.0 * 0.2 / f["gather"]
    assert b["bound_stage_ms"] == pytest.approx(stages + 0.32)
    assert b["bound_ms"] <= b["bound_stage_ms"] <= 2.0
    assert max(f.values()) <= il.DEFAULT_FACTOR
    # the design estimate: the cheaper of int16 merged filters (GEMM at half rate) and re-quantizing them
    # (a second pass over the merged filters; none here)
    assert b["estimate_int16_ms"] == pytest.approx(stages + il.INT16_GEMM_COST * 0.32)
    assert b["estimate_requant_ms"] == pytest.approx(stages + 0.32)
    assert b["estimate_ms"] == pytest.approx(min(b["estimate_int16_ms"], b["estimate_requant_ms"]))
    with_merge = il.lower_bound(2.0, {**shares, "merge_filters": 0.1, "gather": 0.1}, 0.8, 0.4, 4.0)
    assert with_merge["estimate_requant_ms"] > with_merge["bound_stage_ms"]


def test_perf_report_parsing(il):
    text = """
# Overhead  Shared Object  Symbol
    40.00%  libhaste_onnx_ops.so  [.] void haste::avx512::(anonymous namespace)::GemmSteps<4, 1>(float)
    10.00%  libhaste_onnx_ops.so  [.] haste::avx512::(anonymous namespace)::GatherPatch(haste::ConvGeometry const&)
    20.00%  libhaste_onnx_ops.so  [.] void haste::avx512::(anonymous namespace)::MergeFilters<1>(float const*)
    10.00%  libonnxruntime.so.1.20.1  [.] onnxruntime::ExecuteKernel
    20.00%  libpython3.11.so.1.0  [.] _PyEval_EvalFrameDefault
"""
    shares = il.parse_perf_report(text)
    assert shares["gemm"] == pytest.approx(0.5)  # python's samples are not the run's
    assert shares["gather"] == pytest.approx(0.125)
    assert shares["merge_filters"] == pytest.approx(0.25)
    assert shares["other"] == pytest.approx(0.125)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_measure_layer_on_a_small_net(il, tmp_path):
    from haste_onnx.plan.build import plan_model

    model = net_model(16, 16)
    plan = plan_model(model)
    layer = plan.replaced()[0]
    images = np.random.default_rng(0).standard_normal((3, 1, 16, 16)).astype(np.float32)
    options = il.Options(counts=(6,), calib=2, repeats=2, warmup=1, perf=False)
    row = il.measure_layer(model, plan, layer, images, options, say=lambda s: None)
    assert row["fused"] and "QLinearConv" in row["int8_ops"]
    assert row["qdq_error"] < 0.1
    assert set(row["ms"]) == {"conv", "qdq", "int8_piece", "haste_L6"}
    h = row["haste"]["6"]
    assert 0 < h["mac_fraction"] <= 1 and "bound" not in h  # no perf split, no bound
    assert 0 < row["int8_nodes"]["share"] <= 1
    assert row["int8_ms"] == pytest.approx(row["ms"]["int8_piece"]["ms"] * row["int8_nodes"]["share"])
    assert "| model |" in il.markdown([{"id": "net", "layers": [row]}])
    assert "never" not in il.compact_markdown([{"id": "net", "layers": [row]}])  # no perf: empty cells
    # the stored form (one line per row, slimmed) renders the same table
    import json

    path = tmp_path / "r.json"
    il.write_json(str(path), {"argv": [], "models": [{"id": "net", "layers": [row]}]})
    stored = json.loads(path.read_text())["models"]
    assert stored[0]["layers"][0]["site"] == row["site"]
    assert il.markdown(stored).splitlines()[2].split("|")[:9] == \
        il.markdown([{"id": "net", "layers": [row]}]).splitlines()[2].split("|")[:9]


def test_factor_needed(il):
    # non-GEMM 1.0 ms, int8 0.8 ms, merged GEMM 0.32 ms: the rest must get 1.0 / 0.48 times faster
    b = il.lower_bound(2.0, {"gemm": 0.5, "other": 0.5}, 0.8, 0.4, 4.0)
    assert b["factor_needed"] == pytest.approx(1.0 / 0.48)
    assert b["factor_needed_int16"] == pytest.approx(1.0 / (0.8 - il.INT16_GEMM_COST * 0.32))
    # at that factor the bound ties with int8
    assert il.lower_bound(2.0, {"gemm": 0.5, "other": 0.5}, 0.8, 0.4, b["factor_needed"])["bound_ms"] == \
        pytest.approx(0.8)
    # int16 merged filters with more than 1 / INT16_GEMM_COST of the MACs left: the GEMM alone loses, never
    late = il.lower_bound(2.0, {"gemm": 0.5}, 0.3, 0.9, 4.0)
    assert late["factor_needed_int16"] == float("inf") and late["factor_needed"] < float("inf")


def test_accuracy_layer_on_a_small_net(il):
    from haste_onnx.plan.build import plan_model

    model = net_model(16, 16)
    plan = plan_model(model)
    layer = plan.replaced()[0]
    images = np.random.default_rng(0).standard_normal((3, 1, 16, 16)).astype(np.float32)
    row = il.accuracy_layer(model, plan, layer, images, il.Options(counts=(64,), calib=2))
    assert 0 < row["ort_int8"] < 0.1
    e = row["L"]["64"]
    key = f"int8_haste_{layer.settings.merge}_requant"
    # 64 hyperplanes: hardly any merging, so the int8 HasteConv is about as close as onnxruntime's int8 conv
    assert e["float_haste"] < 0.05 and e[key] < 3 * row["ort_int8"] + e["float_haste"]
    assert "| model |" in il.accuracy_markdown([{"id": "net", "layers": [row]}])
