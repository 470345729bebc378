"""Rule: IR version and opset imports of a rewritten or stripped model.

Patterns handled:
- default-domain (`""` or `ai.onnx`) opset below 7, or no default-domain
  import: the model is rejected (`ModelRejected`).
- IR version above 10 (onnx 1.23 writes 14, which onnxruntime 1.31 refuses):
  lowered to 10. IR version below 4 (where every initializer must also be a
  graph input): raised to 4 when the rewriter adds initializers.
- a HasteConv in the model and no `haste` opset import: `haste` version 1 is
  imported (exactly once).
"""
from __future__ import annotations

import onnx
from onnx import helper

from ..errors import ModelRejected
from ..op.geometry import DOMAIN, OPSET_VERSION
from .graphs import opset_version

MIN_OPSET = 7
MAX_IR_VERSION = 10
MIN_IR_VERSION_WITH_NEW_INITIALIZERS = 4


def check_opset(model: onnx.ModelProto) -> int:
    version = opset_version(model, "")
    if version is None:
        raise ModelRejected("the model imports no default-domain (ai.onnx) opset")
    if version < MIN_OPSET:
        raise ModelRejected(f"opset {version} is older than {MIN_OPSET}, the oldest supported; "
                            "convert it with onnx.version_converter first")
    return version


def finalize(model: onnx.ModelProto, added_initializers: bool) -> None:
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
    if added_initializers and model.ir_version < MIN_IR_VERSION_WITH_NEW_INITIALIZERS:
        model.ir_version = MIN_IR_VERSION_WITH_NEW_INITIALIZERS
    if added_initializers and not any(op.domain == DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OPSET_VERSION))
