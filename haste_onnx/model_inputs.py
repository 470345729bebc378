"""The one reader of a model's inputs: names, dims, and what the probe and the data loaders need of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

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


# ---- what the probe and `compare` assume about the input ---------------------------------------------

LAYOUTS = ("NCHW", "NHWC")
DEFAULT_CHANNELS = 3  # a free channel dimension
DEFAULT_SIDE = {1: 28, 3: 224}  # a free height/width, by channels (Fashion-MNIST's 28, ImageNet's 224)
DEFAULT_SIDE_OTHER = 224
# metadata_props keys (lower case) that exporters use for the normalisation, the range, the size and the layout
META_MEAN = ("mean", "image_mean", "img_mean", "input_mean", "norm_mean", "pixel_mean", "normalization_mean",
             "preprocess_mean", "mean_values")
META_STD = ("std", "image_std", "img_std", "input_std", "norm_std", "pixel_std", "normalization_std", "preprocess_std",
            "std_values", "scale_values")
META_RANGE = ("value_range", "input_range", "pixel_range", "range")
META_SIZE = ("imgsz", "image_size", "img_size", "input_size")
META_LAYOUT = ("layout", "data_format", "input_layout")
# ONNX's standard image metadata (docs/MetadataProps.md): Image.NominalPixelRange
NOMINAL_RANGES = {"nominalrange_0_255": (0.0, 255.0), "normalized_0_1": (0.0, 1.0), "normalized_1_1": (-1.0, 1.0),
                  "nominalrange_16_235": (16.0, 235.0)}


@dataclass(frozen=True)
class InputDescription:
    """The model's image input as the probe and `compare` feed it, with what was assumed and why.

    Images in [0, 1] become `lo + x * (hi - lo)` for `value_range` (lo, hi), then `(v - mean) / std` per
    channel, in `layout`, float32 (`prepare`)."""

    name: str
    layout: str
    shape: Tuple[int, ...]  # in the model's layout; batch: the graph's fixed one, else the stated one, else 1
    channels: int
    height: int
    width: int
    value_range: Tuple[float, float]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    fixed_batch: Optional[int]  # the graph's fixed batch size, None when free
    free_dims: Tuple[int, ...]  # the dims (axes) the graph leaves free, given a size here
    reasons: Tuple[str, ...]  # what was assumed, and why: "NHWC from the last dimension 3", ...
    calibration: Optional[str] = None  # the folder of the user's own images (data-light), or None (data-free)

    @property
    def mode(self) -> str:
        return "data-light" if self.calibration else "data-free"

    def preprocessing(self) -> str:
        lo, hi = self.value_range
        norm = ("no normalisation" if all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)
                else f"(x - mean) / std, mean {_floats(self.mean)}, std {_floats(self.std)}")
        return f"values in [{lo:g}, {hi:g}], {norm}"

    def summary(self) -> str:
        """One line: the input, its preprocessing, and why."""
        return (f"input {self.name!r} {self.layout} {'x'.join(map(str, self.shape))}, {self.preprocessing()} "
                f"({'; '.join(self.reasons)})")

    def to_json(self) -> dict:
        return {"name": self.name, "layout": self.layout, "shape": list(self.shape),
                "value_range": list(self.value_range), "mean": list(self.mean), "std": list(self.std),
                "free_dims": list(self.free_dims), "assumed": list(self.reasons), "mode": self.mode,
                "calibration": self.calibration}

    def prepare(self, images):
        """Images in [0, 1], [N,H,W,C] or [N,C,H,W] (taken as channels first when axis 1 has `channels`
        and the last axis does not) and already of this size -> float32 in the model's layout and range."""
        import numpy as np

        x = np.asarray(images, np.float32)
        if x.ndim != 4:
            raise ValueError(f"expected [N,H,W,C] or [N,C,H,W] images, got shape {x.shape}")
        if x.shape[1] == self.channels and x.shape[-1] != self.channels:
            x = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
        if x.shape[1:] != (self.height, self.width, self.channels):
            raise ValueError(f"images of shape {x.shape[1:]} do not fit {self.height}x{self.width}x{self.channels}")
        lo, hi = self.value_range
        x = lo + x * np.float32(hi - lo)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)


def _floats(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _numbers(text: str) -> List[float]:
    import re

    return [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)]


def _metadata(model: onnx.ModelProto) -> dict:
    return {p.key.strip().lower(): p.value for p in model.metadata_props}


def _dims_text(value: onnx.ValueInfoProto) -> str:
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return f"{onnx.helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else '?'} of unknown rank"
    dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return f"{onnx.helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else '?'}[{','.join(dims)}]"


def _image_like(value: onnx.ValueInfoProto) -> bool:
    t = value.type.tensor_type
    return t.HasField("shape") and len(t.shape.dim) == 4 and t.elem_type == onnx.TensorProto.FLOAT


def _transposed_to_nchw(model: onnx.ModelProto, name: str) -> bool:
    """Whether the input feeds a Transpose with perm [0, 3, 1, 2] (NHWC -> NCHW)."""
    for node in model.graph.node:
        if node.op_type == "Transpose" and node.input and node.input[0] == name:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm == [0, 3, 1, 2]:
                return True
    return False


def _feeds_conv(model: onnx.ModelProto, name: str) -> bool:
    return any(n.op_type == "Conv" and n.input and n.input[0] == name for n in model.graph.node)


def describe_input(model: onnx.ModelProto, spec: Optional[InputSpec] = None, mean=None, std=None,
                   mean_std_origin: str = "the data options") -> InputDescription:
    """What the model's image input looks like: layout, size, range and normalisation, each from `spec` (what
    the user stated), else the graph, else the model's metadata_props, else a stated default; `mean`/`std`
    (a caller's normalisation, e.g. that of the evaluation data) come after the spec's. Raises InputError
    (one line) for a model the probe cannot feed: no image input, other inputs too, not float32, not 4-D."""
    from .errors import InputError

    spec = spec or InputSpec()
    inputs = image_inputs(model)
    if not inputs:
        raise InputError("the model has no graph input")
    first = inputs[0]
    if len(inputs) > 1:
        others = ", ".join(f"{i.name} ({_dims_text(i)}, {'image-like' if _image_like(i) else 'not an image'})"
                           for i in inputs[1:])
        raise InputError(f"the probe and compare feed one image input ({first.name}); this model also takes "
                         f"{others}")
    t = first.type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT:
        raise InputError(f"input {first.name} is {_dims_text(first)}; the probe and compare feed float32 images")
    meta = _metadata(model)
    reasons: List[str] = []
    graph_dims = ([d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
                  if t.HasField("shape") else None)
    if spec.shape is not None:
        if graph_dims is None:
            graph_dims = [None] * len(spec.shape)
        if len(spec.shape) != len(graph_dims):
            raise InputError(f"the input shape {'x'.join(map(str, spec.shape))} has {len(spec.shape)} dims; input "
                             f"{first.name} has {len(graph_dims)} ({_dims_text(first)})")
        clash = [i for i, (g, s) in enumerate(zip(graph_dims, spec.shape)) if g is not None and g != s]
        if clash:
            raise InputError(f"the input shape {'x'.join(map(str, spec.shape))} does not match input {first.name} "
                             f"({_dims_text(first)}) at dim {clash[0]}")
    if graph_dims is None or len(graph_dims) != 4:
        raise InputError(f"input {first.name} is {_dims_text(first)}; the probe and compare feed images "
                         "[N,C,H,W] or [N,H,W,C]" + ("" if graph_dims is not None else
                                                     " (a 4-D input shape fixes an input of unknown rank)"))
    free = tuple(i for i, d in enumerate(graph_dims) if d is None)
    dims = [s if g is None else g for g, s in zip(graph_dims, spec.shape)] if spec.shape else list(graph_dims)

    # layout
    if spec.layout is not None:
        if spec.layout not in LAYOUTS:
            raise InputError(f"unknown layout {spec.layout!r}; expected NCHW or NHWC")
        layout = spec.layout
        reasons.append(f"{layout} as stated")
    elif _transposed_to_nchw(model, first.name):
        layout = "NHWC"
        reasons.append("NHWC from the Transpose to NCHW after the input")
    elif any(meta.get(k, "").strip().lower() in ("nhwc", "channels_last") for k in META_LAYOUT):
        layout = "NHWC"
        reasons.append("NHWC from the model's metadata")
    elif dims[3] in (1, 3) and dims[1] not in (1, 3):
        layout = "NHWC"
        reasons.append(f"NHWC from the last dimension {dims[3]}")
    elif dims[1] is not None:
        layout = "NCHW"
        reasons.append(f"NCHW from dimension 1 = {dims[1]}" if dims[1] in (1, 3) else "NCHW: default")
    else:
        layout = "NCHW"
        reasons.append("NCHW: the input feeds a Conv" if _feeds_conv(model, first.name) else "NCHW: default")
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)

    # channels and size
    channels = dims[c_axis]
    if channels is None:
        channels = DEFAULT_CHANNELS
        reasons.append(f"{channels} channels: free dim, default")
    height, width = dims[h_axis], dims[w_axis]
    if height is not None and width is not None:
        stated = spec.shape is not None and (h_axis in free or w_axis in free)
        reasons.append(f"{height}x{width} " + ("from the input shape stated" if stated else "from the graph"))
    else:
        size = next(((k, _numbers(meta[k])) for k in META_SIZE if k in meta and _numbers(meta[k])), None)
        if size is not None:
            values = [int(v) for v in size[1]]
            height = height or values[0]
            width = width or (values[1] if len(values) > 1 else values[0])
            reasons.append(f"{height}x{width}: free dims, from the model's metadata ({size[0]})")
        elif height is not None or width is not None:
            height = width = height or width
            reasons.append(f"{height}x{width}: a free side, made square")
        else:
            height = width = DEFAULT_SIDE.get(channels, DEFAULT_SIDE_OTHER)
            reasons.append(f"{height}x{width}: free dims, default for {channels} channel(s)")
    dims[c_axis], dims[h_axis], dims[w_axis] = channels, height, width
    fixed = graph_dims[0]
    dims[0] = dims[0] or 1

    # range and normalisation
    value_range, mean_std, why = _range_and_normalisation(spec, meta, channels, mean, std, mean_std_origin)
    reasons.append(why)
    for label, values in (("mean", mean_std[0]), ("std", mean_std[1])):
        if len(values) not in (1, channels):
            raise InputError(f"the {label} has {len(values)} values; the input has {channels} channel(s)")
    if any(s == 0 for s in mean_std[1]):
        raise InputError("the std must not be 0")
    if not value_range[0] < value_range[1]:
        raise InputError(f"the value range [{value_range[0]:g}, {value_range[1]:g}] is empty")
    return InputDescription(first.name, layout, tuple(int(d) for d in dims), int(channels), int(height), int(width),
                            value_range, tuple(float(m) for m in mean_std[0]), tuple(float(s) for s in mean_std[1]),
                            fixed, free, tuple(reasons), spec.calibration)


def _range_and_normalisation(spec: InputSpec, meta: dict, channels: int, mean, std, origin: str):
    """((lo, hi), (mean, std), why): stated, else the caller's, else the metadata's, else defaults."""
    from .data.preprocess import FASHION_MNIST_MEAN_STD, IMAGENET_MEAN_STD

    value_range, range_why = None, None
    if spec.value_range is not None:
        value_range, range_why = tuple(float(v) for v in spec.value_range), "range as stated"
    else:
        nominal = meta.get("image.nominalpixelrange", "").strip().lower()
        found = next((k for k in META_RANGE if k in meta and len(_numbers(meta[k])) == 2), None)
        if nominal in NOMINAL_RANGES:
            value_range = NOMINAL_RANGES[nominal]
            range_why = "range from the model's metadata (Image.NominalPixelRange)"
        elif found:
            value_range, range_why = tuple(_numbers(meta[found])), f"range from the model's metadata ({found})"
        elif "ultralytics" in meta.get("author", "").lower():
            value_range, range_why = (0.0, 1.0), "range [0, 1] from the model's metadata (Ultralytics: RGB/255)"
    if spec.mean is not None or spec.std is not None:
        mean_std = (tuple(spec.mean or (0.0,)), tuple(spec.std or (1.0,)))
        norm_why = "mean/std as stated"
    elif mean is not None and std is not None:
        mean_std, norm_why = (tuple(mean), tuple(std)), f"mean/std from {origin}"
    else:
        mean_key = next((k for k in META_MEAN if k in meta and _numbers(meta[k])), None)
        std_key = next((k for k in META_STD if k in meta and _numbers(meta[k])), None)
        if mean_key or std_key:
            mean_std = (tuple(_numbers(meta[mean_key])) if mean_key else (0.0,),
                        tuple(_numbers(meta[std_key])) if std_key else (1.0,))
            norm_why = f"mean/std from the model's metadata ({', '.join(k for k in (mean_key, std_key) if k)})"
        elif value_range is not None:
            mean_std, norm_why = ((0.0,), (1.0,)), "no mean/std with that range"
        else:
            default = FASHION_MNIST_MEAN_STD if channels == 1 else IMAGENET_MEAN_STD if channels == 3 else None
            mean_std = default or ((0.5,), (0.25,))
            name = {1: "Fashion-MNIST's", 3: "ImageNet's"}.get(channels, "0.5/0.25")
            return (0.0, 1.0), mean_std, f"range [0, 1] and {name} mean/std: default for {channels} channel(s)"
    if value_range is None:
        value_range, range_why = (0.0, 1.0), "range [0, 1]: default"
    return value_range, mean_std, f"{range_why}; {norm_why}"


def with_input_shape(model: onnx.ModelProto, shape: Sequence[int]) -> onnx.ModelProto:
    """`model` with its first input's free dims, other than the batch, set from `shape` (e.g. that of the probe
    images): a copy, or the model itself when only the batch is free. The probe measures MACs from shapes."""
    first = image_inputs(model)[0] if image_inputs(model) else None
    dims = list(first.type.tensor_type.shape.dim) if first is not None else []
    axes = [a for a, d in enumerate(dims)
            if 0 < a < len(shape) and not (d.HasField("dim_value") and d.dim_value > 0)]
    if not axes:
        return model
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    value = next(i for i in fixed.graph.input if i.name == first.name)
    for axis in axes:
        dim = value.type.tensor_type.shape.dim[axis]
        dim.Clear()
        dim.dim_value = int(shape[axis])
    return fixed
