"""rewrite/fuse_activation.py: the residual Add and Relu/Clip after a HasteConv fused into it, and strip undoing it."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import haste_onnx
from haste_onnx.rewrite import HashingOptions, rewrite_model, strip_haste
from models_inline import build, conv_w

# A stem Conv (kept: the first conv), then the layer the rewriter replaces, then `{tail}`, which reads `c` and
# writes `Y`. `r` is a tensor of c's shape for residual Adds.
BLOCK = """
<ir_version: 8, opset_import: ["" : {opset}]>
block (float[N,3,8,8] X) => (float[N,16,8,8] Y{extra_out}) {{
    r = Conv <pads = [1, 1, 1, 1], kernel_shape = [3, 3]> (X, w_stem, b_stem)
    c = Conv <pads = [1, 1, 1, 1]> (r, w1, b1)
    {tail}
}}
"""
SHAPES = {"w_stem": conv_w(16, 3), "b_stem": [16], "w1": conv_w(16, 16), "b1": [16]}


def model(tail: str, opset: int = 17, extra_out: str = "", shapes=None) -> onnx.ModelProto:
    return build(BLOCK.format(opset=opset, tail=tail, extra_out=extra_out), {**SHAPES, **(shapes or {})})


def run(m: onnx.ModelProto, x: np.ndarray) -> list:
    sess = ort.InferenceSession(m.SerializeToString(), haste_onnx.session_options(threads=1),
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x})


def haste_node(m: onnx.ModelProto) -> onnx.NodeProto:
    (node,) = [n for n in m.graph.node if n.op_type == "HasteConv"]
    return node


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


X = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("tail,ops,activation,params,residual", [
    ("Y = Relu (c)", [], b"Relu", None, False),
    ("s = Add (c, r)\n    Y = Relu (s)", [], b"Relu", None, True),
    ("s = Add (r, c)\n    Y = Relu (s)", [], b"Relu", None, True),  # either operand order
    ("Y = Add (c, r)", [], None, None, True),
    ("Y = Clip (c, lo, hi)", [], b"Clip", [-0.25, 0.5], False),
    ("s = Add (c, r)\n    Y = Clip (s, lo, hi)", [], b"Clip", [-0.25, 0.5], True),
])
def test_fuses_and_computes_what_the_unfused_rewrite_computes(tail, ops, activation, params, residual):
    m = model(tail)
    if "Clip" in tail:
        m.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(-0.25, np.float32), "lo"),
                                    onnx.numpy_helper.from_array(np.array(0.5, np.float32), "hi")])
    fused, report = rewrite_model(m, HashingOptions(hyperplanes=6))
    plain, _ = rewrite_model(m, HashingOptions(hyperplanes=6, fuse=False))
    node = haste_node(fused)
    assert [n.op_type for n in fused.graph.node] == ["Conv", "HasteConv"] + ops
    assert node.output[0] == "Y" and node.name == haste_node(plain).name
    assert attrs(node).get("activation") == activation
    if params:
        assert attrs(node)["activation_params"] == pytest.approx(params)
    assert (len(node.input) > 4 and node.input[4] == "r") == residual
    assert len(plain.graph.node) > len(fused.graph.node)  # fuse=False keeps them apart
    np.testing.assert_array_equal(run(fused, X)[0], run(plain, X)[0])
    row = next(r for r in report.layers if r.status == "replaced")
    assert row.settings["fused"] == "+".join((["Add"] if residual else []) + ([activation.decode()] if activation else []))
    # strip undoes it: the original graph's ops, and the original's outputs
    stripped = onnx.ModelProto()
    stripped.CopyFrom(fused)
    strip_haste(stripped)
    onnx.checker.check_model(stripped)
    assert sorted(n.op_type for n in stripped.graph.node) == sorted(n.op_type for n in m.graph.node)
    np.testing.assert_allclose(run(stripped, X)[0], run(m, X)[0], rtol=1e-5, atol=1e-5)


def test_clip_with_attribute_bounds_before_opset_11():
    m = model("Y = Clip <min = -0.5, max = 1.5> (c)", opset=10)
    fused, _ = rewrite_model(m, HashingOptions(hyperplanes=6))
    node = haste_node(fused)
    assert attrs(node)["activation"] == b"Clip" and attrs(node)["activation_params"] == pytest.approx([-0.5, 1.5])
    np.testing.assert_array_equal(run(fused, X)[0], run(rewrite_model(m, HashingOptions(hyperplanes=6, fuse=False))[0],
                                                        X)[0])
    strip_haste(fused)
    clip = next(n for n in fused.graph.node if n.op_type == "Clip")
    assert {a.name: a.f for a in clip.attribute} == pytest.approx({"min": -0.5, "max": 1.5})


@pytest.mark.parametrize("tail,extra_out,kept", [
    ("Y = Relu (c)", ", float[N,16,8,8] c", ["Relu"]),          # c is also a graph output
    ("a = Relu (c)\n    b = Sigmoid (c)\n    Y = Add (a, b)", "", ["Relu", "Sigmoid", "Add"]),  # c read twice
    ("Y = Add (c, bias)", "", ["Add"]),                           # a broadcast operand, not c's shape
    ("Y = Clip (c, lo)", "", ["Clip"]),                           # a bound computed at run time
    ("Y = LeakyRelu (c)", "", ["LeakyRelu"]),                     # not an activation HasteConv has
    ("a = Relu (c)\n    Y = Add (a, r)", "", ["Add"]),           # activation before the Add: only the Relu
])
def test_leaves_what_it_cannot_fuse(tail, extra_out, kept):
    m = model(tail, extra_out=extra_out, shapes={"bias": [1, 16, 1, 1]} if "bias" in tail else None)
    if "lo" in tail:
        lo = onnx.helper.make_node("ReduceMin", ["r"], ["lo"], keepdims=0)
        m.graph.node.insert(1, lo)
    fused, _ = rewrite_model(m, HashingOptions(hyperplanes=6))
    others = [n.op_type for n in fused.graph.node if n.op_type not in ("Conv", "HasteConv", "ReduceMin")]
    assert others == kept
    outputs = run(fused, X)
    plain = run(rewrite_model(m, HashingOptions(hyperplanes=6, fuse=False))[0], X)
    for a, b in zip(outputs, plain):
        np.testing.assert_array_equal(a, b)
