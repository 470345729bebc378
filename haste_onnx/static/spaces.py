"""Channel spaces: the sets of tensors that share one Conv output's channel axis, and who writes and reads them.

A space starts at a Conv output and grows through every op that keeps channel c as channel c: elementwise
activations (Relu, Clip, LeakyRelu, ...), BatchNormalization, pools, Identity/Dropout, and binary elementwise
ops (Add, Mul, ...). A binary op whose other operand is a tensor of the graph *joins* that operand's space:
a residual Add ties the channels of every Conv that writes into it (they are removed together or not at all).
A constant operand is per-channel ([C,1,1] / [1,C,1,1]: sliced with the space) or a scalar.

Who writes a space: Conv nodes (group 1, static weights; `producers`). Who reads it (`consumers`):
- `ConvInput`: a Conv (group 1) that reads it as X: input channel c is `W[:, c]`;
- `FlatInput`: a Gemm or MatMul after Flatten/Reshape (or a rank-2 tensor after GlobalAveragePool+Flatten or
  ReduceMean): channel c is the column block [c*HW, (c+1)*HW) of the weight;
- `ConcatInput`: a Concat along channels: the consumers of its output, at the space's channel offset.
Anything else that touches a space (a graph output, a grouped Conv, an unknown op, a subgraph reading it, a
graph input joined by an Add) makes it *fixed*, with the reason: its channels cannot change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import onnx
from onnx import helper

from ..rewrite.graphs import Scope, TypeTable, display_name, find_initializer, subgraphs, walk_scopes
from ..rewrite.normalize import resolve_static

_DOMAINS = ("", "ai.onnx")
UNARY = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus",
         "Identity", "Dropout", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "PRelu", "Celu",
         "Gelu", "Mish", "Softsign", "Abs", "Neg", "Exp", "Sqrt", "Floor", "Ceil", "Round", "Erf"}
BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow"}


@dataclass
class ConvInput:
    node: onnx.NodeProto


@dataclass
class FlatInput:
    node: onnx.NodeProto  # Gemm or MatMul
    hw: int  # columns per channel
    reshape: Optional[onnx.NodeProto] = None  # a Reshape whose explicit shape must follow the width


@dataclass
class ConcatInput:
    node: onnx.NodeProto
    position: int  # which input of the Concat
    inner: "Space" = None  # the Concat output's own space (its consumers)


@dataclass
class Space:
    """One channel space of one graph."""

    scope: Scope
    channels: int
    tensors: Set[str] = field(default_factory=set)
    producers: List[onnx.NodeProto] = field(default_factory=list)
    norms: List[onnx.NodeProto] = field(default_factory=list)  # BatchNormalization nodes inside
    constants: List[Tuple[onnx.NodeProto, int]] = field(default_factory=list)  # per-channel constant operands
    consumers: list = field(default_factory=list)
    fixed: Optional[str] = None
    joined_by: List[str] = field(default_factory=list)  # the nodes (Add, ...) that tie producers together

    @property
    def tied(self) -> bool:
        return len(self.producers) > 1

    def producer_names(self) -> List[str]:
        return [display_name(self.scope, p) for p in self.producers]

    def read_tensors(self) -> Set[str]:
        """The tensors of this space that its Conv/Gemm consumers read (where the next layer sees it)."""
        names = set()
        for c in self.consumers:
            if isinstance(c, ConvInput):
                names.add(c.node.input[0])
            elif isinstance(c, FlatInput):
                names.add((c.reshape.input[0] if c.reshape is not None else c.node.input[0]))
        return names


def is_conv(node) -> bool:
    return node.op_type == "Conv" and node.domain in _DOMAINS


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class GraphIndex:
    """Readers and producers of every tensor of one graph."""

    def __init__(self, scope: Scope, types: TypeTable):
        self.scope, self.types = scope, types
        self.producer: Dict[str, onnx.NodeProto] = {}
        self.readers: Dict[str, List[Tuple[onnx.NodeProto, int]]] = {}
        self.captured: Set[str] = set()  # read from inside a subgraph of a node of this graph
        for node in scope.graph.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i, name in enumerate(node.input):
                if name:
                    self.readers.setdefault(name, []).append((node, i))
            for _, sub in subgraphs(node):
                self.captured |= _names_read(sub)
        self.outputs = {o.name for o in scope.graph.output}

    def static(self, name: str) -> Optional[np.ndarray]:
        value = resolve_static(self.scope, name)
        return None if isinstance(value, str) else value.array

    def channels_of(self, name: str) -> Optional[int]:
        dims = self.types.dims(name)
        return dims[1] if dims and len(dims) >= 2 and isinstance(dims[1], int) else None


def _names_read(graph) -> Set[str]:
    names = set()
    for node in graph.node:
        names.update(n for n in node.input if n)
        for _, sub in subgraphs(node):
            names |= _names_read(sub)
    names.update(o.name for o in graph.output)
    return names


def conv_problem(index: GraphIndex, node) -> Optional[str]:
    """Why a Conv cannot have its output channels changed, or None."""
    if len(node.input) < 2 or index.static(node.input[1]) is None:
        return "weights are not static"
    if len(node.input) > 2 and node.input[2] and index.static(node.input[2]) is None:
        return "bias is not static"
    w = index.static(node.input[1])
    if w.ndim != 4:
        return f"{w.ndim - 2}-D convolution (only 2-D is handled)"
    group = int(_attrs(node).get("group", 1))
    if group != 1:
        return ("depthwise" if w.shape[1] == 1 else "grouped") + f" convolution (group {group}): skipped"
    if w.dtype != np.float32:
        return f"{w.dtype} weights (float32 only)"
    return None


def build_space(index: GraphIndex, seed: str, inner: bool = False) -> Space:
    """The space of tensor `seed` (a Conv output, or a Concat output when `inner`)."""
    space = Space(index.scope, 0)
    queue: List[str] = []
    scope = index.scope

    def fix(reason: str) -> None:
        if space.fixed is None:
            space.fixed = reason

    def add(name: str, backward: bool = True) -> None:
        if name in space.tensors:
            return
        space.tensors.add(name)
        queue.append(name)
        if backward:
            producer = index.producer.get(name)
            if producer is None:
                fix(f"{name!r} is a graph input" if not inner or name != seed else "")
                return
            op = producer.op_type
            if is_conv(producer):
                problem = conv_problem(index, producer)
                if problem:
                    fix(f"written by Conv {display_name(scope, producer)}: {problem}")
                    return
                if producer not in space.producers:
                    space.producers.append(producer)
            elif op in UNARY or op == "BatchNormalization":
                add(producer.input[0])
            elif op in BINARY:
                for x in producer.input:
                    if x and index.static(x) is None:
                        add(x)
            elif inner and name == seed and op == "Concat":
                pass
            else:
                fix(f"{name!r} is written by {op}")

    add(seed, backward=not inner)
    if inner:
        space.tensors.add(seed)
    while queue:
        name = queue.pop(0)
        if name in index.outputs:
            fix(f"{name!r} is a graph output")
        if name in index.captured:
            fix(f"{name!r} is read inside a subgraph")
        for node, position in index.readers.get(name, []):
            if node.domain not in _DOMAINS:
                fix(f"read by {node.domain}::{node.op_type}")
                continue
            op = node.op_type
            label = display_name(scope, node)
            if op in UNARY and position == 0:
                if op in ("MaxPool", "Dropout") and len([o for o in node.output if o]) > 1:
                    fix(f"{op} {label} has a second output")
                if op == "PRelu":
                    fix(f"PRelu {label}: per-channel slopes are not handled")
                add(node.output[0], backward=False)
            elif op == "BatchNormalization" and position == 0:
                space.norms.append(node)
                add(node.output[0], backward=False)
            elif op in BINARY:
                for k, x in enumerate(node.input):
                    if not x or x in space.tensors:
                        continue
                    value = index.static(x)
                    if value is None:
                        space.joined_by.append(label)
                        add(x)
                    elif value.size > 1:
                        space.constants.append((node, k))
                add(node.output[0], backward=False)
            elif is_conv(node) and position == 0:
                w = index.static(node.input[1]) if len(node.input) > 1 else None
                group = int(_attrs(node).get("group", 1))
                if w is None or w.ndim != 4:
                    fix(f"read by Conv {label} without static 2-D weights")
                elif group != 1:
                    fix(f"read by a {'depthwise' if w.shape[1] == 1 else 'grouped'} Conv {label} (group {group})")
                else:
                    space.consumers.append(ConvInput(node))
            elif op == "Concat" and position >= 0:
                axis = int(_attrs(node).get("axis", 1))
                rank = len(index.types.dims(name) or [0, 0, 0, 0])
                if axis not in (1, 1 - rank) or inner:
                    fix(f"Concat {label} along axis {axis}" if not inner else f"nested Concat {label}")
                else:
                    child = build_space(index, node.output[0], inner=True)
                    if child.fixed:
                        fix(f"after Concat {label}: {child.fixed}")
                    elif child.producers:
                        fix(f"after Concat {label}: joined with Conv outputs")
                    else:
                        space.consumers.append(ConcatInput(node, position, child))
            elif op in ("Flatten", "Reshape") and position == 0:
                _flat(index, space, node, name, fix)
            elif op in ("ReduceMean", "ReduceMax") and position == 0:
                axes = _reduce_axes(index, node)
                dims = index.types.dims(name) or []
                if axes is None or sorted(a % max(len(dims), 1) for a in axes) != [2, 3] or len(dims) != 4:
                    fix(f"{op} {label} over axes {axes}")
                elif int(_attrs(node).get("keepdims", 1)):
                    add(node.output[0], backward=False)
                else:
                    _flat_readers(index, space, node.output[0], 1, None, fix)
            elif op in ("Gemm", "MatMul") and position == 0:
                dims = index.types.dims(name) or []
                if len(dims) == 2:
                    _gemm(index, space, node, 1, None, fix)
                else:
                    fix(f"{op} {label} reads a rank-{len(dims)} tensor")
            else:
                fix(f"read by {op} {label}" + (f" (input {position})" if position else ""))
    if space.producers:
        w = index.static(space.producers[0].input[1])
        space.channels = int(w.shape[0])
        for p in space.producers[1:]:
            if int(index.static(p.input[1]).shape[0]) != space.channels:
                fix("producers with different channel counts")
    elif not inner:
        fix("no Conv writes it")
    else:
        space.channels = index.channels_of(seed) or 0
    return space


def _reduce_axes(index: GraphIndex, node) -> Optional[List[int]]:
    attrs = _attrs(node)
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(node.input) > 1 and node.input[1]:
        value = index.static(node.input[1])
        return None if value is None else [int(a) for a in value.reshape(-1)]
    return None


def _flat(index: GraphIndex, space: Space, node, name: str, fix) -> None:
    dims = index.types.dims(name)
    label = display_name(index.scope, node)
    if not dims or len(dims) != 4 or not all(isinstance(d, int) for d in dims[1:]):
        fix(f"{node.op_type} {label} of a tensor of unknown shape")
        return
    hw = dims[2] * dims[3]
    if node.op_type == "Flatten":
        if int(_attrs(node).get("axis", 1)) != 1:
            fix(f"Flatten {label} not at axis 1")
            return
        _flat_readers(index, space, node.output[0], hw, None, fix)
        return
    shape = index.static(node.input[1]) if len(node.input) > 1 else None
    if shape is None or shape.size != 2 or int(shape[1]) not in (-1, dims[1] * hw):
        fix(f"Reshape {label} to {None if shape is None else shape.tolist()}")
        return
    _flat_readers(index, space, node.output[0], hw, node, fix)


def _flat_readers(index: GraphIndex, space: Space, name: str, hw: int, reshape, fix) -> None:
    if name in index.outputs or name in index.captured:
        fix(f"{name!r} is a graph output or read in a subgraph")
    for reader, position in index.readers.get(name, []):
        if reader.op_type in ("Gemm", "MatMul") and position == 0:
            _gemm(index, space, reader, hw, reshape, fix)
        else:
            fix(f"flattened channels read by {reader.op_type} {display_name(index.scope, reader)}")


def _gemm(index: GraphIndex, space: Space, node, hw: int, reshape, fix) -> None:
    label = display_name(index.scope, node)
    attrs = _attrs(node)
    if node.op_type == "Gemm" and attrs.get("transA", 0):
        fix(f"Gemm {label} with transA")
        return
    if len(node.input) < 2 or index.static(node.input[1]) is None:
        fix(f"{node.op_type} {label} without a static weight")
        return
    space.consumers.append(FlatInput(node, hw, reshape))


def find_spaces(model: onnx.ModelProto) -> List[Space]:
    """Every space that some Conv writes, once each (a tied space is found from any of its producers)."""
    types = TypeTable.infer(model)
    spaces: List[Space] = []
    for scope in walk_scopes(model.graph):
        index = GraphIndex(scope, types)
        seen: Set[str] = set()
        for node in scope.graph.node:
            if not is_conv(node) or node.output[0] in seen:
                continue
            space = build_space(index, node.output[0])
            if not space.producers:
                space.producers.append(node)
                space.channels = int(index.static(node.input[1]).shape[0]) if len(node.input) > 1 and \
                    index.static(node.input[1]) is not None and index.static(node.input[1]).ndim >= 1 else 0
            seen |= space.tensors
            spaces.append(space)
    return spaces


__all__ = ["Space", "ConvInput", "FlatInput", "ConcatInput", "find_spaces", "GraphIndex", "find_initializer"]
