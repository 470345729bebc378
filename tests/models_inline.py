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
