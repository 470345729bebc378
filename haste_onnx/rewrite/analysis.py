"""What every Conv and HasteConv of a model looks like: the facts the policy and the tables use.

Read-only: nothing here edits the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np
import onnx
from onnx import helper

from ..op.geometry import DOMAIN, OP_TYPE, ConvAttrs
from .graphs import Scope, TypeTable, display_name, walk
from .normalize import StaticTensor, resolve_static

HASTE_ATTRS = ("tile", "centering", "magnitude_split", "merge", "seed", "sparsity", "activation",
               "activation_params")


def is_conv(node: onnx.NodeProto) -> bool:
    return node.op_type == "Conv" and node.domain in ("", "ai.onnx")


def is_haste(node: onnx.NodeProto) -> bool:
    return node.op_type == OP_TYPE and node.domain == DOMAIN


@dataclass(eq=False)
class ConvSite:
    """One Conv or HasteConv node and what is known about it."""

    index: int  # position among Conv and HasteConv nodes in the traversal order
    scope: Scope
    node: onnx.NodeProto
    name: str
    op: str  # "Conv" or "HasteConv"
    attrs: dict
    weight: Union[StaticTensor, str, None] = None  # static value, or why it has none
    bias: Union[StaticTensor, str, None] = None
    weight_shape: Optional[List[int]] = None
    elem_type: Optional[int] = None  # of X (or W when X is unknown)
    input_shape: Optional[List] = None
    output_shape: Optional[List] = None
    conv: Optional[ConvAttrs] = None
    problem: Optional[str] = None  # a reason no option can switch off
    extra: dict = field(default_factory=dict)

    @property
    def group(self) -> int:
        return int(self.attrs.get("group", 1))

    @property
    def in_channels(self) -> Optional[int]:
        return self.weight_shape[1] * self.group if self.weight_shape else None

    @property
    def channels_per_group(self) -> Optional[int]:
        return self.weight_shape[1] if self.weight_shape else None

    @property
    def out_channels(self) -> Optional[int]:
        return self.weight_shape[0] if self.weight_shape else None

    @property
    def kernel(self) -> Optional[List[int]]:
        if "kernel_shape" in self.attrs:
            return [int(k) for k in self.attrs["kernel_shape"]]
        return list(self.weight_shape[2:]) if self.weight_shape else None

    @property
    def strides(self) -> List[int]:
        kernel = self.kernel or [1, 1]
        return [int(s) for s in self.attrs.get("strides", [1] * len(kernel))]

    @property
    def macs(self) -> Optional[int]:
        """Dense multiply-accumulates per image (batch item); None when a size is unknown."""
        if not self.weight_shape or not self.output_shape or len(self.output_shape) < 3:
            return None
        spatial = self.output_shape[2:]
        if not all(isinstance(d, int) for d in spatial):
            return None
        return int(np.prod(self.weight_shape, dtype=np.int64) * np.prod(spatial, dtype=np.int64))


def site_names(site: ConvSite) -> List[str]:
    """The names `--include`/`--exclude`/`--layer-hyperplanes` patterns match: the site's, the node's, or
    `<output>` and the output's name for an unnamed node."""
    node = site.node
    names = [site.name]
    if node.name:
        names.append(node.name)
    elif node.output:
        names.append(f"<{node.output[0]}>")
        names.append(node.output[0])
    return names


def collect(model: onnx.ModelProto, types: Optional[TypeTable] = None) -> List[ConvSite]:
    """Every Conv and HasteConv in the traversal order, with shapes and static weights resolved."""
    types = types or TypeTable.infer(model)
    sites: List[ConvSite] = []
    for scope, node in walk(model.graph):
        if not (is_conv(node) or is_haste(node)):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for k, v in list(attrs.items()):
            if isinstance(v, bytes):
                attrs[k] = v.decode()
        site = ConvSite(len(sites), scope, node, display_name(scope, node), "Conv" if is_conv(node) else OP_TYPE,
                        attrs)
        sites.append(site)
        x = node.input[0] if node.input else ""
        site.input_shape = types.dims(x)
        site.output_shape = types.dims(node.output[0]) if node.output else None
        site.elem_type = types.elem_type(x)
        if len(node.input) < 2 or not node.input[1]:
            site.problem = "no weight input"
            continue
        site.weight = resolve_static(scope, node.input[1])
        if len(node.input) > 2 and node.input[2]:
            site.bias = resolve_static(scope, node.input[2])
        if isinstance(site.weight, StaticTensor):
            site.weight_shape = [int(d) for d in site.weight.array.shape]
            if site.elem_type is None:
                site.elem_type = helper.np_dtype_to_tensor_dtype(site.weight.array.dtype)
        else:
            dims = types.dims(node.input[1])
            if dims and all(isinstance(d, int) for d in dims):
                site.weight_shape = dims
            if site.elem_type is None:
                site.elem_type = types.elem_type(node.input[1])
        site.problem = _hard_problem(site)
        if site.problem is None and site.output_shape is None and site.input_shape and site.conv:
            site.output_shape = _output_shape(site)
    return sites


def _hard_problem(site: ConvSite) -> Optional[str]:
    """Reasons no option can switch off; also fills site.conv."""
    if site.weight_shape is None:
        return site.weight if isinstance(site.weight, str) else "the weight shape is unknown"
    if len(site.weight_shape) != 4:
        return f"{len(site.weight_shape) - 2}-D convolution (only 2-D is supported)"
    try:
        site.conv = ConvAttrs.from_dict(site.attrs, site.weight_shape)
    except ValueError as err:
        return f"unsupported attributes: {err}"
    if site.conv.auto_pad not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        return f"unknown auto_pad {site.conv.auto_pad!r}"
    if site.elem_type is not None and site.elem_type != onnx.TensorProto.FLOAT:
        return f"{helper.tensor_dtype_to_string(site.elem_type).replace('TensorProto.', '').lower()} " \
               "tensors (HasteConv is float32 only)"
    if site.channels_per_group == 1:
        if site.group == 1:
            return "one input channel: nothing to merge"
        return "depthwise (one input channel per group): nothing to merge"
    if isinstance(site.weight, str):
        return f"weights are not static: {site.weight}"
    if isinstance(site.bias, str):
        return f"bias is not static: {site.bias}"
    return None


def _output_shape(site: ConvSite) -> Optional[List]:
    shape = site.input_shape
    if not shape or len(shape) != 4:
        return None
    out = [shape[0], site.out_channels]
    if all(isinstance(d, int) for d in shape[2:]):
        out.extend(site.conv.output_hw(shape[2:]))
    else:
        out.extend([None, None])
    return out


def format_dims(dims: Optional[Sequence]) -> str:
    if dims is None:
        return "?"
    return "x".join("?" if d is None else str(d) for d in dims)
