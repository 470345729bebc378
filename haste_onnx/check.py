"""Checking a result before it is reported: onnx.checker, and a load in onnxruntime.

- `check_model`: `onnx.checker.check_model` with the HasteConv schema
  registered (so HasteConv nodes are checked against it).
- `check_load`: creates an onnxruntime InferenceSession of a model file (or
  proto), with the HasteConv op library registered when the model uses the
  `haste` domain. A missing library is a CheckError too: a model that cannot
  be loaded is not reported as a success.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import onnx

from .errors import CheckError
from .op.geometry import DOMAIN
from .op.schema import register_schema


def uses_haste(model: onnx.ModelProto) -> bool:
    return any(op.domain == DOMAIN for op in model.opset_import)


def check_model(model: Union[str, Path, onnx.ModelProto]) -> None:
    """onnx.checker on a proto or a file (a file may use external data and exceed 2 GiB)."""
    register_schema()
    if isinstance(model, Path):
        model = str(model)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as err:
        raise CheckError(f"the result fails onnx.checker: {_first_line(err)}") from err


def check_load(model: Union[str, Path, onnx.ModelProto], with_library: bool = True) -> None:
    """Load `model` in onnxruntime (CPU); raise CheckError when that fails."""
    import onnxruntime as ort

    from .runtime import LibraryNotFoundError, inference_session

    try:
        if with_library:
            inference_session(model)
        else:
            source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
            ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    except LibraryNotFoundError as err:
        raise CheckError(f"cannot check the result in onnxruntime: {_first_line(err)}") from err
    except Exception as err:  # onnxruntime raises its own exception types
        raise CheckError(f"onnxruntime refuses the result: {_first_line(err)}") from err


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
