"""Rule: fuse the residual Add and the activation that follow a HasteConv into it.

onnxruntime fuses Conv + Add + Relu into one kernel; after the rewrite those
ops would run on their own (a full pass over the output each). Patterns
handled, in every graph of the model (subgraphs too):

1. `HasteConv -> Relu` becomes `HasteConv(activation="Relu")`.
2. `HasteConv -> Clip` with constant bounds (attributes before opset 11,
   initializer or absent inputs from 11 on) becomes
   `HasteConv(activation="Clip", activation_params=[min, max])`.
3. `HasteConv -> Add(y, r)` (either operand order) becomes `HasteConv(..., Z=r)`
   when `r` has exactly `y`'s shape (no broadcasting; each size known or the
   same named symbolic size) and type float.
4. Pattern 3 followed by a Relu or Clip as in 1 or 2: both fused.

Each step needs the tensor between the two nodes to be read by the second
node only and not to be a graph output; the fused HasteConv takes over the
output name of the last node it absorbed and keeps its own node name. Not
fused: an activation before the Add, a HasteConv that already has a residual
or an activation, Clip with computed bounds, other activations.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import onnx
from onnx import helper

from .analysis import is_haste
from .graphs import (Scope, TypeTable, consumers, display_name, find_initializer, opset_version, remove_nodes, to_array,
                     use_counts, walk_scopes)

FLOAT_MAX = float(np.finfo(np.float32).max)


def fuse_activations(model: onnx.ModelProto, types: TypeTable) -> List[Tuple[str, str]]:
    """Fuse in place; returns (the HasteConv's display name before fusing, what was fused, e.g. "Add+Relu")."""
    fused = []
    opset = opset_version(model) or 1
    # Read counts once: a fusion only replaces reads among the tensors it absorbs, so the others stay right.
    uses = use_counts(model)
    for scope in walk_scopes(model.graph):
        for node in list(scope.graph.node):
            if not is_haste(node) or len(node.input) > 4 or any(a.name == "activation" for a in node.attribute):
                continue
            steps, label = [], display_name(scope, node)
            add = _sole_reader(uses, scope, node.output[0], "Add")
            if add is not None:
                other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
                if _same_static_shape(types, node.output[0], other) and other != node.output[0]:
                    while len(node.input) < 4:
                        node.input.append("")
                    node.input.append(other)
                    node = _absorb(scope, node, add)
                    steps.append("Add")
            for op in ("Relu", "Clip"):
                act = _sole_reader(uses, scope, node.output[0], op)
                if act is None:
                    continue
                node_attrs = {"activation": op}
                if op == "Clip":
                    bounds = _clip_bounds(scope, act, opset)
                    if bounds is None:
                        continue
                    node_attrs["activation_params"] = list(bounds)
                node.attribute.extend(helper.make_attribute(k, v) for k, v in node_attrs.items())
                node = _absorb(scope, node, act)
                steps.append(op)
                break
            if steps:
                fused.append((label, "+".join(steps)))
    return fused


def _sole_reader(uses, scope: Scope, name: str, op_type: str) -> Optional[onnx.NodeProto]:
    """The one node of type `op_type` that reads `name`, when nothing else reads it and it is no graph output."""
    readers = consumers(scope, name)
    if len(readers) != 1 or uses[name] != 1:
        return None
    reader = readers[0]
    if reader.op_type != op_type or reader.domain not in ("", "ai.onnx") or name not in reader.input:
        return None
    return reader


def _absorb(scope: Scope, node: onnx.NodeProto, follower: onnx.NodeProto) -> onnx.NodeProto:
    """`node` moves to `follower`'s place (after the producers of every input it now has) and takes over its
    output; returns the moved node."""
    graph = scope.graph
    index = next(i for i, n in enumerate(graph.node) if n is follower)
    output = follower.output[0]
    graph.node[index].CopyFrom(node)
    moved = graph.node[index]
    moved.output[0] = output
    remove_nodes(graph, [node])
    return moved


def _same_static_shape(types: TypeTable, a: str, b: str) -> bool:
    ta, tb = types.types.get(a), types.types.get(b)
    if ta is None or tb is None or not ta.HasField("tensor_type") or not tb.HasField("tensor_type"):
        return False
    if tb.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        return False
    da, db = ta.tensor_type.shape.dim, tb.tensor_type.shape.dim
    if len(da) != 4 or len(db) != 4:
        return False
    # Equal sizes, or the same named symbolic size (the batch of a residual block).
    return all((x.HasField("dim_value") and y.HasField("dim_value") and x.dim_value == y.dim_value)
               or (x.HasField("dim_param") and y.HasField("dim_param") and x.dim_param and x.dim_param == y.dim_param)
               for x, y in zip(da, db))


def _clip_bounds(scope: Scope, clip: onnx.NodeProto, opset: int) -> Optional[Tuple[float, float]]:
    """(min, max) of a Clip whose bounds are constant, else None."""
    if opset < 11:
        attrs = {a.name: a.f for a in clip.attribute}
        return attrs.get("min", -FLOAT_MAX), attrs.get("max", FLOAT_MAX)
    bounds = []
    for index, default in ((1, -FLOAT_MAX), (2, FLOAT_MAX)):
        if len(clip.input) <= index or not clip.input[index]:
            bounds.append(default)
            continue
        _, tensor = find_initializer(scope, clip.input[index])
        if tensor is None:
            return None
        value = to_array(tensor)
        if value.size != 1:
            return None
        bounds.append(float(value.reshape(())))
    return (bounds[0], bounds[1]) if bounds[0] <= bounds[1] else None
