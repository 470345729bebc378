"""Small test models, written in ONNX text syntax, with seeded random weights, and ways to run them.

`build(text, shapes)` parses the graph and adds a float32 initializer for each
name in `shapes` (random, seeded); names the text already defines are left alone.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from haste_onnx.op.reference import HasteConv
from haste_onnx.op.schema import register_schema

IR = 8


def build(text: str, shapes: Dict[str, Sequence[int]], seed: int = 0, ir_version: Optional[int] = IR) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    rng = np.random.default_rng(seed)
    for name, shape in shapes.items():
        if name.startswith("bn_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.startswith("bn_scale"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def conv_w(c_out: int, c_in: int, k: int = 3) -> list:
    return [c_out, c_in, k, k]


# A chain with one layer of every kind the default policy decides about.
CHAIN = """
<ir_version: 8, opset_import: ["" : {opset}]>
chain (float[N,3,8,8] X) => (float[N,16,4,4] Y) {{
    a = Conv <pads = [1, 1, 1, 1], kernel_shape = [3, 3]> (X, w_stem, b_stem)
    a_r = Tanh (a)
    c1 = Conv <pads = [1, 1, 1, 1]> (a_r, w1, b1)
    c1_r = Tanh (c1)
    c2 = Conv <pads = [1, 1, 1, 1]> (c1_r, w2)
    pw = Conv (c2, w_pw, b_pw)
    gr = Conv <group = 2, pads = [1, 1, 1, 1]> (pw, w_gr)
    dw = Conv <group = 16, pads = [1, 1, 1, 1]> (gr, w_dw)
    small = Conv <pads = [1, 1, 1, 1]> (dw, w_small)
    Y = Conv <strides = [2, 2], pads = [1, 1, 1, 1]> (small, w_s2, b_s2)
}}
"""
CHAIN_SHAPES = {
    "w_stem": conv_w(16, 3), "b_stem": [16], "w1": conv_w(16, 16), "b1": [16], "w2": conv_w(16, 16),
    "w_pw": conv_w(8, 16, 1), "b_pw": [8], "w_gr": conv_w(16, 4), "w_dw": conv_w(16, 1),
    "w_small": conv_w(16, 16), "w_s2": conv_w(16, 16), "b_s2": [16],
}
# Which CHAIN layers the default policy replaces.
CHAIN_REPLACED = {"c1", "c2", "small"}


def chain_model(opset: int = 17, ir_version: Optional[int] = IR, seed: int = 0) -> onnx.ModelProto:
    model = build(CHAIN.format(opset=opset), CHAIN_SHAPES, seed=seed, ir_version=ir_version)
    for node in model.graph.node:
        node.name = node.output[0]
    model.graph.node[0].name = "stem"
    return model


def random_input(shape, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def run_reference(model: onnx.ModelProto, feeds: dict) -> list:
    """Outputs via onnx's ReferenceEvaluator with the numpy HasteConv."""
    from onnx.reference import ReferenceEvaluator

    register_schema()
    return ReferenceEvaluator(model, new_ops=[HasteConv]).run(None, feeds)


def run_ort(model: onnx.ModelProto, feeds: dict, with_library: bool = False) -> list:
    """Outputs via onnxruntime (CPU, 1 thread); with the op library when asked."""
    import onnxruntime as ort

    if with_library:
        from haste_onnx.runtime import inference_session

        return inference_session(model, threads=1).run(None, feeds)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


# Stem, then two 3x3 convs that the default policy replaces. Symbolic sizes when dynamic.
PLAIN = """
<ir_version: 8, opset_import: ["" : {opset}]>
plain (float[{n},3,{h},{w}] X) => (float[{n},16,{h},{w}] Y) {{
    a = Conv <pads = [1, 1, 1, 1]> (X, w_stem, b_stem)
    t = Tanh (a)
    c1 = Conv <pads = [1, 1, 1, 1]> (t, w1, b1)
    Y = Conv <pads = [1, 1, 1, 1]> (c1, w2)
}}
"""
PLAIN_SHAPES = {"w_stem": conv_w(16, 3), "b_stem": [16], "w1": conv_w(16, 16), "b1": [16], "w2": conv_w(16, 16)}


def plain_model(opset: int = 17, dynamic: bool = False, ir_version: Optional[int] = IR, seed: int = 0):
    n, h, w = ("N", "H", "W") if dynamic else (1, 8, 8)
    model = build(PLAIN.format(opset=opset, n=n, h=h, w=w), PLAIN_SHAPES, seed=seed, ir_version=ir_version)
    for node, name in zip(model.graph.node, ["stem", "tanh", "c1", "c2"]):
        node.name = name
    return model


# Conv -> BatchNormalization, twice; the second Conv output also feeds an Add (no folding there).
BN = """
<ir_version: 8, opset_import: ["" : {opset}]>
bn (float[1,16,8,8] X) => (float[1,16,8,8] Y) {{
    a = Conv <pads = [1, 1, 1, 1]> (X, w_stem)
    c1 = Conv <pads = [1, 1, 1, 1]> (a, w1, b1)
    n1 = BatchNormalization <epsilon = 0.001> (c1, bn_scale1, bn_beta1, bn_mean1, bn_var1)
    c2 = Conv <pads = [1, 1, 1, 1]> (n1, w2)
    n2 = BatchNormalization (c2, bn_scale2, bn_beta2, bn_mean2, bn_var2)
    Y = Add (n2, c2)
}}
"""
BN_SHAPES = {"w_stem": conv_w(16, 16), "w1": conv_w(16, 16), "b1": [16], "w2": conv_w(16, 16),
             **{f"{p}{i}": [16] for p in ("bn_scale", "bn_beta", "bn_mean", "bn_var") for i in (1, 2)}}


def bn_model(opset: int = 17, ir_version: Optional[int] = IR):
    model = build(BN.format(opset=opset), BN_SHAPES, ir_version=ir_version)
    for node in model.graph.node:
        node.name = node.output[0]
    return model


def as_ir3(model: onnx.ModelProto) -> onnx.ModelProto:
    """IR version 3, where every initializer is also listed as a graph input."""
    from onnx import helper

    model.ir_version = 3
    listed = {i.name for i in model.graph.input}
    for init in model.graph.initializer:
        if init.name not in listed:
            model.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    return model


def constant_node(name: str, array: np.ndarray) -> onnx.NodeProto:
    from onnx import helper

    return helper.make_node("Constant", [], [name], name=f"const_{name}",
                            value=numpy_helper.from_array(array.astype(np.float32), name))


def move_to_constants(model: onnx.ModelProto, names) -> onnx.ModelProto:
    """Turn the initializers `names` of the main graph into Constant nodes at the top of the graph."""
    inits = {i.name: i for i in model.graph.initializer}
    nodes = [constant_node(n, numpy_helper.to_array(inits[n])) for n in names]
    kept = [i for i in model.graph.initializer if i.name not in names]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    for i, node in enumerate(nodes):
        model.graph.node.insert(i, node)
    return model


# A Conv inside the then-branch of an If, reading the outer graph's initializers and a Constant of its own.
IF = """
<ir_version: 8, opset_import: ["" : 13]>
ifm (float[1,16,8,8] X, bool cond) => (float[1,16,8,8] Y) {
    s = Conv <pads = [1, 1, 1, 1]> (X, w_stem)
    Y = If (cond) <
        then_branch = then_g () => (float[1,16,8,8] ty) {
            ty = Conv <pads = [1, 1, 1, 1]> (s, w1, b1)
        },
        else_branch = else_g () => (float[1,16,8,8] ey) {
            ey = Identity (s)
        }>
}
"""
IF_SHAPES = {"w_stem": conv_w(16, 16), "w1": conv_w(16, 16), "b1": [16]}


def if_model(weight_in_branch: bool = False):
    model = build(IF, IF_SHAPES)
    model.graph.node[0].name = "stem"
    model.graph.node[1].name = "branch"
    then = model.graph.node[1].attribute[0].g
    assert then.name == "then_g"
    then.node[0].name = "inner"
    if weight_in_branch:  # w1 becomes a Constant inside the branch
        w1 = next(i for i in model.graph.initializer if i.name == "w1")
        then.node.insert(0, constant_node("w1_local", numpy_helper.to_array(w1)))
        then.node[1].input[1] = "w1_local"
    return model


# NHWC input and output, with Transposes around the Convs.
NHWC = """
<ir_version: 8, opset_import: ["" : 13]>
nhwc (float[N,8,8,16] X) => (float[N,8,8,16] Y) {
    xt = Transpose <perm = [0, 3, 1, 2]> (X)
    s = Conv <pads = [1, 1, 1, 1]> (xt, w_stem)
    c = Conv <pads = [1, 1, 1, 1]> (s, w1, b1)
    Y = Transpose <perm = [0, 2, 3, 1]> (c)
}
"""


def nhwc_model():
    model = build(NHWC, {"w_stem": conv_w(16, 16), "w1": conv_w(16, 16), "b1": [16]})
    for node in model.graph.node:
        node.name = node.output[0]
    return model


def no_conv_model():
    return onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
noconv (float[1,4] X) => (float[1,4] Y) {
    Y = Relu (X)
}
""")


# Bias and weights from ConstantOfShape (with Constant shapes).
CONSTANT_OF_SHAPE = """
<ir_version: 8, opset_import: ["" : {opset}]>
cos (float[1,3,8,8] X) => (float[1,16,8,8] Y) {{
    a = Conv <pads = [1, 1, 1, 1]> (X, w_stem)
    t = Tanh (a)
    shape_b = Constant <value = int64[1] {{16}}> ()
    b1 = ConstantOfShape <value = float[1] {{0.5}}> (shape_b)
    c1 = Conv <pads = [1, 1, 1, 1]> (t, w1, b1)
    shape_w = Constant <value = int64[4] {{16, 16, 3, 3}}> ()
    w2 = ConstantOfShape <value = float[1] {{0.01}}> (shape_w)
    Y = Conv <pads = [1, 1, 1, 1]> (c1, w2)
}}
"""


def constant_of_shape_model(opset: int = 13):
    model = build(CONSTANT_OF_SHAPE.format(opset=opset), {"w_stem": conv_w(16, 3), "w1": conv_w(16, 16)})
    for node in model.graph.node:
        node.name = node.output[0]
    return model
