"""haste::HasteLevel: the level input of a steerable model, checked and turned into a branch index.

A steerable model (docs/steerable.md) offers levels 0 = l_0 < l_1 < ... <= 1;
a level value runs the largest offered level at most that value. The op
exists so that a bad value (NaN, outside [0, 1]) fails the Run with one clear
line instead of silently picking a branch. Here: its ONNX schema (so
onnx.checker accepts it) and the rule both the C++ kernel
(custom_op/haste_level_op.cc) and the reference (`op/reference.py`) follow.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import onnx
from onnx import defs

from .geometry import DOMAIN, OPSET_VERSION

LEVEL_OP = "HasteLevel"
LEVEL_INPUT = "haste_level"


def level_problem(level: float) -> str:
    """Why `level` is not a valid level ('' when it is): the kernel's message."""
    if not 0.0 <= level <= 1.0:  # NaN fails it too
        return f"{LEVEL_INPUT} must be a number in [0, 1], got {_text(level)}"
    return ""


def choose_level(level: float, levels: Sequence[float]) -> int:
    """The index of the largest of `levels` (ascending, starting at 0) at most `level`; ValueError when the
    level is not a number in [0, 1]."""
    problem = level_problem(float(level))
    if problem:
        raise ValueError(problem)
    # compared in float32, as the kernel compares its float32 input with its float32 attribute
    value = np.float32(level)
    return max(i for i, offered in enumerate(levels) if np.float32(offered) <= value)


def check_levels(levels: Sequence[float]) -> None:
    """ValueError unless `levels` start at 0 and rise strictly within [0, 1]."""
    if not levels or levels[0] != 0.0:
        raise ValueError("the levels must start at 0")
    if any(not (b > a and b <= 1.0) for a, b in zip(levels, levels[1:])):
        raise ValueError(f"the levels must rise strictly and stay in [0, 1], got {list(levels)}")


def _text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.9g}"


def _infer(ctx) -> None:
    out = onnx.TypeProto()
    out.tensor_type.elem_type = onnx.TensorProto.INT64
    out.tensor_type.shape.SetInParent()  # a scalar
    ctx.set_output_type(0, out)


def make_level_schema() -> defs.OpSchema:
    P = defs.OpSchema.FormalParameter
    schema = defs.OpSchema(
        LEVEL_OP, DOMAIN, OPSET_VERSION,
        "The index of the largest offered level at most the input; an error for NaN or a value outside [0, 1].",
        inputs=[P("level", "T", "float32, one element: the level asked for")],
        outputs=[P("index", "I", "int64 scalar: the offered level that runs")],
        type_constraints=[("T", ["tensor(float)"], "float32"), ("I", ["tensor(int64)"], "index")],
        attributes=[defs.OpSchema.Attribute("levels", defs.OpSchema.AttrType.FLOATS,
                                            "the offered levels, ascending, the first 0")],
    )
    schema.set_type_and_shape_inference_function(_infer)
    return schema
