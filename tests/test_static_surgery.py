"""Channel surgery (haste_onnx/static): merging exact duplicate channels leaves every output equal."""
import numpy as np
import onnx
import pytest

from conftest import duplicate_rows, run_model
from models_inline import build, conv_w
from haste_onnx.static import Edit, apply_edits, find_spaces
from haste_onnx.static.normalize import normalize

CHAIN = """
<ir_version: 8, opset_import: ["" : 17]>
chain (float[N,2,8,8] input) => (float[N,5] logits) {
    a = Conv <pads = [1, 1, 1, 1]> (input, w0, b0)
    an = BatchNormalization (a, bn_scale, bn_b, bn_mean, bn_var)
    ar = Relu (an)
    ap = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (ar)
    c = Conv <pads = [1, 1, 1, 1]> (ap, w1, b1)
    cr = LeakyRelu <alpha = 0.1> (c)
    f = Flatten (cr)
    logits = Gemm <transB = 1> (f, wf, bf)
}
"""
CHAIN_SHAPES = {"w0": conv_w(6, 2), "b0": [6], "bn_scale": [6], "bn_b": [6], "bn_mean": [6], "bn_var": [6],
                "w1": conv_w(4, 6), "b1": [4], "wf": [5, 64], "bf": [5]}

RESIDUAL = """
<ir_version: 8, opset_import: ["" : 17]>
res (float[N,2,8,8] input) => (float[N,5] logits) {
    s = Conv <pads = [1, 1, 1, 1]> (input, ws, bs)
    sr = Relu (s)
    c1 = Conv <pads = [1, 1, 1, 1]> (sr, w1, b1)
    c1r = Clip (c1, lo, hi)
    c2 = Conv <pads = [1, 1, 1, 1]> (c1r, w2, b2)
    y = Add (c2, sr)
    yr = Relu (y)
    g = GlobalAveragePool (yr)
    f = Flatten (g)
    logits = Gemm <transB = 1> (f, wf, bf)
}
"""
RESIDUAL_SHAPES = {"ws": conv_w(4, 2), "bs": [4], "w1": conv_w(6, 4), "b1": [6], "w2": conv_w(4, 6), "b2": [4],
                   "wf": [5, 4], "bf": [5]}

CONCAT = """
<ir_version: 8, opset_import: ["" : 17]>
cat (float[N,2,6,6] input) => (float[N,5] logits) {
    a = Conv <pads = [1, 1, 1, 1]> (input, wa, ba)
    b = Conv <pads = [1, 1, 1, 1]> (input, wb, bb)
    ar = Relu (a)
    br = Sigmoid (b)
    k = Concat <axis = 1> (ar, br)
    c = Conv (k, wc, bc)
    shape = Constant <value = int64[2] {0, 108}> ()
    f = Reshape (c, shape)
    logits = MatMul (f, wf)
}
"""
CONCAT_SHAPES = {"wa": conv_w(4, 2), "ba": [4], "wb": conv_w(5, 2), "bb": [5], "wc": conv_w(3, 9, 1), "bc": [3],
                 "wf": [108, 5]}


def _model(text, shapes, **dup):
    model = build(text, shapes, seed=3)
    for node in model.graph.node:
        node.name = node.output[0]
    return model


def _space(spaces, producer):
    return next(k for k, s in enumerate(spaces) if producer in [p.name for p in s.producers])


def _merged(model, edits_by_producer):
    work = onnx.ModelProto()
    work.CopyFrom(model)
    normalize(work)
    spaces = find_spaces(work)
    edits = {}
    for producer, (channels, merged) in edits_by_producer.items():
        edits[_space(spaces, producer)] = Edit.merge(channels, merged)
    apply_edits(work, spaces, edits)
    onnx.checker.check_model(work, full_check=True)
    return work, spaces


def _close(a, b):
    for x, y in zip(a, b):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(x).max())))


def test_merging_duplicates_through_batchnorm_pool_and_flatten_is_exact(rng):
    names = {"w0", "b0", "bn_scale", "bn_b", "bn_mean", "bn_var"}
    model = duplicate_rows(_model(CHAIN, CHAIN_SHAPES), names, [(4, 1), (5, 1)])
    model = duplicate_rows(model, {"w1", "b1"}, [(3, 0)])
    x = rng.normal(size=(3, 2, 8, 8)).astype(np.float32)
    out, spaces = _merged(model, {"a": (6, {4: (1, 1.0), 5: (1, 1.0)}), "c": (4, {3: (0, 1.0)})})
    _close(run_model(model, x), run_model(out, x))
    weights = {i.name: i for i in out.graph.initializer}
    conv = next(n for n in out.graph.node if n.name == "a")
    assert list(weights[conv.input[1]].dims) == [4, 2, 3, 3]
    gemm = next(n for n in out.graph.node if n.op_type == "Gemm")
    assert list(weights[gemm.input[1]].dims) == [5, 48]  # 3 channels x 16 pixels
    assert not any(n.op_type == "BatchNormalization" for n in out.graph.node)  # folded


def test_residual_add_ties_its_producers_and_merges_them_together(rng):
    model = duplicate_rows(_model(RESIDUAL, RESIDUAL_SHAPES), {"ws", "bs", "w2", "b2"}, [(3, 2)])
    model.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(0, np.float32), "lo"),
                                    onnx.numpy_helper.from_array(np.array(6, np.float32), "hi")])
    model = duplicate_rows(model, {"w1", "b1"}, [(5, 0)])
    x = rng.normal(size=(2, 2, 8, 8)).astype(np.float32)
    out, spaces = _merged(model, {"s": (4, {3: (2, 1.0)}), "c1": (6, {5: (0, 1.0)})})
    tied = spaces[_space(spaces, "s")]
    assert sorted(p.name for p in tied.producers) == ["c2", "s"] and tied.fixed is None
    assert tied.joined_by == ["y"]
    inner = spaces[_space(spaces, "c1")]
    assert [p.name for p in inner.producers] == ["c1"]
    _close(run_model(model, x), run_model(out, x))


def test_concat_offsets_and_reshape_into_matmul(rng):
    model = duplicate_rows(_model(CONCAT, CONCAT_SHAPES), {"wb", "bb"}, [(4, 1)])
    model = duplicate_rows(model, {"wa", "ba"}, [(2, 0)])
    x = rng.normal(size=(2, 2, 6, 6)).astype(np.float32)
    out, _ = _merged(model, {"b": (5, {4: (1, 1.0)}), "a": (4, {2: (0, 1.0)})})
    _close(run_model(model, x), run_model(out, x))
    weights = {i.name: i for i in out.graph.initializer}
    conv = next(n for n in out.graph.node if n.name == "c")
    assert list(weights[conv.input[1]].dims) == [3, 7, 1, 1]


def test_scaled_merge_is_exact_for_proportional_channels(rng):
    """P3: channel j = 2 x channel r before a positively homogeneous Relu: W_next[:, r] += 2 W_next[:, j]."""
    model = duplicate_rows(_model(CHAIN, CHAIN_SHAPES), {"w1", "b1"}, [(3, 0)], scales=[2.0])
    x = rng.normal(size=(2, 2, 8, 8)).astype(np.float32)
    # c's channel 3 = 2 * channel 0 after LeakyRelu (positively homogeneous)
    out, _ = _merged(model, {"c": (4, {3: (0, 2.0)})})
    _close(run_model(model, x), run_model(out, x))


def test_removal_changes_outputs_and_fixed_spaces_say_why():
    model = _model(CHAIN, CHAIN_SHAPES)
    spaces = find_spaces(model)
    assert all(s.fixed is None for s in spaces)
    text = CHAIN.replace("c = Conv <pads = [1, 1, 1, 1]> (ap, w1, b1)",
                         "c = Conv <pads = [1, 1, 1, 1], group = 2> (ap, w1, b1)")
    grouped = _model(text, {**CHAIN_SHAPES, "w1": [4, 3, 3, 3]})
    spaces = find_spaces(grouped)
    assert "grouped Conv" in spaces[_space(spaces, "a")].fixed
    assert "grouped convolution" in spaces[_space(spaces, "c")].fixed
