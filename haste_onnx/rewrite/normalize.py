"""Rule: make a Conv's weights static initializers, and fold a following BatchNormalization.

Patterns handled, for the weight `W` and bias `B` of a Conv that will be replaced:
- `W`/`B` is an initializer of the Conv's graph or of an enclosing graph: kept as is.
- `W`/`B` is the output of a `Constant` node (attribute `value`, `value_float`,
  `value_floats`, `value_int` or `value_ints`), in the Conv's graph or an
  enclosing one: the node becomes an initializer of the same name in its graph.
- `W`/`B` is the output of `ConstantOfShape` whose shape input is itself static
  (initializer or Constant): the node becomes an initializer filled with its
  `value` (default float 0); its shape Constant goes if nothing else reads it.
- Anything else (a graph input, the output of another op such as
  `DequantizeLinear`, a `Constant` with `sparse_value`): not static; the Conv
  is skipped and the reason names the producer.

BatchNormalization folding (`fold_batchnorm`): `Conv -> BatchNormalization`
where the Conv output has exactly one reader (the BN, in the same graph, as
its input X), the Conv output is not a graph output, the BN is in inference
mode (`training_mode` 0, only its first output read, `spatial` 1) and its
scale, B, mean and var are static vectors of length C_out. Then
`W' = W * s[:, None, None, None]`, `B' = (B - mean) * s + beta` with
`s = scale / sqrt(var + epsilon)`, computed in float64 and stored as new
float32 initializers; the Conv takes over the BN's output name and the BN
node goes. Initializers and Constants that nothing reads any more are removed
(initializers that are also graph inputs are kept).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Set, Tuple, Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graphs import (Scope, _delete_where, consumers, find_initializer, find_producer, is_graph_input, remove_nodes,
                     remove_unused, to_array, unique_name, use_counts)

_ONNX_DOMAINS = ("", "ai.onnx")


@dataclass
class StaticTensor:
    """A tensor whose value is known before run time, and where it comes from."""

    name: str
    kind: str  # "initializer", "Constant" or "ConstantOfShape"
    scope: Scope  # the graph holding the initializer or the producing node
    array: np.ndarray
    node: Optional[onnx.NodeProto] = None
    shape_source: Optional["StaticTensor"] = None  # the shape input of a ConstantOfShape


def resolve_static(scope: Scope, name: str) -> Union[StaticTensor, str]:
    """The static value of `name` as seen from `scope`, or the reason it has none."""
    owner, init = find_initializer(scope, name)
    if init is not None:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            return f"initializer {name!r} has external data that was not loaded"
        return StaticTensor(name, "initializer", owner, to_array(init))
    owner, node = find_producer(scope, name)
    if node is None:
        if is_graph_input(scope, name):
            return f"{name!r} is a graph input, not a constant"
        return f"{name!r} has no producer"
    if node.domain not in _ONNX_DOMAINS:
        return f"{name!r} comes from {node.domain}::{node.op_type}, not a constant"
    if node.op_type == "Constant":
        value = _constant_value(node)
        if value is None:
            return f"{name!r} comes from a Constant with {[a.name for a in node.attribute]}, not a dense tensor"
        return StaticTensor(name, "Constant", owner, value, node)
    if node.op_type == "ConstantOfShape":
        shape = resolve_static(owner, node.input[0])
        if isinstance(shape, str):
            return f"{name!r} comes from ConstantOfShape with a shape that is not static"
        fill = np.zeros((1,), np.float32)
        for attr in node.attribute:
            if attr.name == "value":
                fill = numpy_helper.to_array(attr.t).reshape(-1)
        dims = tuple(int(d) for d in shape.array.reshape(-1))
        return StaticTensor(name, "ConstantOfShape", owner, np.full(dims, fill[0], dtype=fill.dtype), node, shape)
    return f"{name!r} comes from {node.op_type}, not a constant"


def _constant_value(node: onnx.NodeProto) -> Optional[np.ndarray]:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), np.int64)
    return None


def materialize(model: onnx.ModelProto, tensor: StaticTensor) -> None:
    """Turn a Constant / ConstantOfShape producer into an initializer of the same name."""
    if tensor.kind == "initializer":
        return
    graph = tensor.scope.graph
    init = numpy_helper.from_array(np.ascontiguousarray(tensor.array), tensor.name)
    graph.initializer.append(init)
    remove_nodes(graph, [tensor.node])
    if tensor.shape_source is not None:
        remove_unused(model, {tensor.shape_source.name})


def fold_batchnorm(model: onnx.ModelProto, scope: Scope, conv: onnx.NodeProto, weight: StaticTensor,
                   bias: Optional[StaticTensor], taken: Set[str]) -> Tuple[bool, str]:
    """Fold the BatchNormalization that follows `conv`, if the pattern allows it.

    Returns (folded, note): note says what was folded or why not ("" when no BN follows).
    """
    out = conv.output[0]
    readers = consumers(scope, out)
    norms = [r for r in readers if r.op_type == "BatchNormalization" and r.domain in _ONNX_DOMAINS]
    if not norms:
        return False, ""
    bn = norms[0]
    if len(readers) != 1 or any(o.name == out for o in scope.graph.output) or use_counts(model)[out] != 1 \
            or bn.input[0] != out:
        return False, "BatchNormalization not folded: the Conv output has other readers"
    attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
    if attrs.get("training_mode", 0) or attrs.get("spatial", 1) != 1 or attrs.get("is_test", 1) == 0:
        return False, "BatchNormalization not folded: not in inference mode"
    uses = use_counts(model)
    if any(name and uses[name] for name in bn.output[1:]):
        return False, "BatchNormalization not folded: its statistics outputs are read"
    params = []
    for name in bn.input[1:5]:
        value = resolve_static(scope, name)
        if isinstance(value, str):
            return False, f"BatchNormalization not folded: {value}"
        params.append(value)
    c_out = weight.array.shape[0]
    if any(p.array.shape != (c_out,) for p in params):
        return False, "BatchNormalization not folded: parameters are not vectors of C_out"
    scale, beta, mean, var = (p.array.astype(np.float64) for p in params)
    eps = float(attrs.get("epsilon", 1e-5))
    s = scale / np.sqrt(var + eps)
    w = (weight.array.astype(np.float64) * s[:, None, None, None]).astype(np.float32)
    b0 = bias.array.astype(np.float64) if bias is not None else np.zeros(c_out)
    b = ((b0 - mean) * s + beta).astype(np.float32)

    base = conv.name or conv.output[0]
    w_name = unique_name(f"{base}.weight_bn_folded", taken)
    b_name = unique_name(f"{base}.bias_bn_folded", taken)
    scope.graph.initializer.extend([numpy_helper.from_array(w, w_name), numpy_helper.from_array(b, b_name)])
    old = {conv.input[1]} | ({conv.input[2]} if len(conv.input) > 2 and conv.input[2] else set())
    old |= {n for n in bn.input[1:5] if n}
    conv.input[1] = w_name
    if len(conv.input) > 2:
        conv.input[2] = b_name
    else:
        conv.input.append(b_name)
    _delete_where(scope.graph.value_info, lambda v: v.name == out)
    conv.output[0] = bn.output[0]
    remove_nodes(scope.graph, [bn])
    remove_unused(model, old)
    label = bn.name or bn.output[0]
    return True, f"folded BatchNormalization {label}"


