"""The one reader of a model's inputs: names, dims, and what the probe and the data loaders need of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import onnx


def image_inputs(model: onnx.ModelProto) -> List[onnx.ValueInfoProto]:
    """The graph inputs that are fed at run time (initializers listed as inputs are not)."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def input_info(model: onnx.ModelProto) -> Tuple[str, List[Optional[int]]]:
    """Name and dims (ints, or None when symbolic) of the model's first real graph input."""
    inputs = image_inputs(model)
    if not inputs:
        raise ValueError("the model has no graph input")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    return inputs[0].name, dims


def input_channels(model: onnx.ModelProto) -> Optional[int]:
    """C of an NCHW first input, None when unknown."""
    dims = input_info(model)[1]
    return dims[1] if len(dims) > 1 else None


def fixed_batch(model: onnx.ModelProto) -> Optional[int]:
    """The first input's batch size when it is fixed."""
    dims = input_info(model)[1]
    return dims[0] if dims and dims[0] else None


@dataclass(frozen=True)
class InputSpec:
    """What a model's image input looks like, as far as the user states it; None: inferred from the graph
    (or a stated default). The probe makes its images to this spec."""

    shape: Optional[Tuple[int, ...]] = None  # fixes free dimensions, e.g. (1, 3, 640, 640) (--input-shape)
    layout: Optional[str] = None  # "NCHW" or "NHWC" (--layout)
    value_range: Optional[Tuple[float, float]] = None  # raw pixel range before normalisation, e.g. (0, 255)
    mean: Optional[Tuple[float, ...]] = None  # normalisation (--mean/--std)
    std: Optional[Tuple[float, ...]] = None
    calibration: Optional[str] = None  # a folder of the user's own unlabelled images (--calibration)
