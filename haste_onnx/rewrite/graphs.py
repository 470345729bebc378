"""Walking and editing ONNX graphs, subgraphs included (shared by every rule).

Plain `onnx` protos, no graph library: the rules edit the model in place and
must leave everything they do not touch byte for byte as it was.

The traversal order is fixed (and is what seeds depend on): the nodes of a
graph in their stored order, and after each node the graphs held in its
attributes (`If` then/else branches, `Loop`/`Scan` bodies), in attribute
order, depth first.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Set, Tuple

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, numpy_helper


@dataclass(eq=False)
class Scope:
    """One graph of the model: the main graph or a subgraph held by `owner`."""

    graph: GraphProto
    path: str = ""  # "" for the main graph, else "<owner>.<attribute>" joined by "/"
    parent: Optional["Scope"] = None
    owner: Optional[NodeProto] = None

    def chain(self) -> Iterator["Scope"]:
        """This scope, then its enclosing scopes out to the main graph."""
        scope: Optional[Scope] = self
        while scope is not None:
            yield scope
            scope = scope.parent


def subgraphs(node: NodeProto) -> List[Tuple[str, GraphProto]]:
    """The graphs held in a node's attributes, in attribute order."""
    found = []
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            found.append((attr.name, attr.g))
        elif attr.type == AttributeProto.GRAPHS:
            found.extend((f"{attr.name}[{i}]", g) for i, g in enumerate(attr.graphs))
    return found


def node_label(node: NodeProto) -> str:
    """A node's name, or `<first output>` for a node without a name."""
    if node.name:
        return node.name
    return f"<{node.output[0]}>" if node.output else f"<{node.op_type}>"


def walk(graph: GraphProto, scope: Optional[Scope] = None) -> Iterator[Tuple[Scope, NodeProto]]:
    """Every (scope, node) of a graph and its subgraphs, in the fixed traversal order."""
    scope = scope or Scope(graph)
    for node in list(graph.node):
        yield scope, node
        for attr_name, sub in subgraphs(node):
            path = f"{node_label(node)}.{attr_name}"
            yield from walk(sub, Scope(sub, f"{scope.path}/{path}" if scope.path else path, scope, node))


def walk_scopes(graph: GraphProto, scope: Optional[Scope] = None) -> Iterator[Scope]:
    scope = scope or Scope(graph)
    yield scope
    for node in graph.node:
        for attr_name, sub in subgraphs(node):
            path = f"{node_label(node)}.{attr_name}"
            yield from walk_scopes(sub, Scope(sub, f"{scope.path}/{path}" if scope.path else path, scope, node))


def display_name(scope: Scope, node: NodeProto) -> str:
    """How tables name a node: `path/name` for nodes in subgraphs."""
    return f"{scope.path}/{node_label(node)}" if scope.path else node_label(node)


def use_counts(model: onnx.ModelProto) -> Counter:
    """How often each tensor name is read: node inputs in every graph plus graph outputs."""
    uses: Counter = Counter()
    for scope in walk_scopes(model.graph):
        for node in scope.graph.node:
            uses.update(n for n in node.input if n)
        uses.update(o.name for o in scope.graph.output)
    return uses


def consumers(scope: Scope, name: str) -> List[NodeProto]:
    """Nodes of this graph that read `name` directly, or through one of their subgraphs."""
    found = []
    for node in scope.graph.node:
        if name in node.input or any(_reads(sub, name) for _, sub in subgraphs(node)):
            found.append(node)
    return found


def _reads(graph: GraphProto, name: str) -> bool:
    for node in graph.node:
        if name in node.input or any(_reads(sub, name) for _, sub in subgraphs(node)):
            return True
    return any(o.name == name for o in graph.output)


def all_names(model: onnx.ModelProto) -> Set[str]:
    """Every node name and tensor name in the model, for making new unique names."""
    names: Set[str] = set()
    for scope in walk_scopes(model.graph):
        g = scope.graph
        names.update(i.name for i in g.initializer)
        names.update(v.name for v in list(g.input) + list(g.output) + list(g.value_info))
        for node in g.node:
            names.add(node.name)
            names.update(node.input)
            names.update(node.output)
    names.discard("")
    return names


def unique_name(base: str, taken: Set[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... whichever is free; the result is added to `taken`."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def find_initializer(scope: Scope, name: str) -> Tuple[Optional[Scope], Optional[TensorProto]]:
    """The initializer `name` as seen from `scope` (its own graph first, then outwards)."""
    for s in scope.chain():
        for init in s.graph.initializer:
            if init.name == name:
                return s, init
        if any(i.name == name for i in s.graph.input) or any(name in n.output for n in s.graph.node):
            return None, None  # a graph input or a node output shadows outer initializers
    return None, None


def find_producer(scope: Scope, name: str) -> Tuple[Optional[Scope], Optional[NodeProto]]:
    """The node that produces `name` as seen from `scope`, and the scope it lives in."""
    for s in scope.chain():
        for node in s.graph.node:
            if name in node.output:
                return s, node
        if any(i.name == name for i in s.graph.input) or any(i.name == name for i in s.graph.initializer):
            return None, None
    return None, None


def is_graph_input(scope: Scope, name: str) -> bool:
    """True when `name` is an input of this graph or an enclosing one and no initializer backs it."""
    for s in scope.chain():
        if any(i.name == name for i in s.graph.input):
            return not any(init.name == name for init in s.graph.initializer)
        if any(name in n.output for n in s.graph.node) or any(i.name == name for i in s.graph.initializer):
            return False
    return False


def to_array(tensor: TensorProto) -> np.ndarray:
    """numpy array of an initializer (its external data must already be loaded)."""
    return numpy_helper.to_array(tensor)


def _delete_where(repeated, predicate) -> None:
    """Delete matching entries in place (by index, so references to the others stay valid)."""
    for i in reversed([i for i, item in enumerate(repeated) if predicate(item)]):
        del repeated[i]


def remove_nodes(graph: GraphProto, nodes: List[NodeProto]) -> None:
    _delete_where(graph.node, lambda n: any(n is m for m in nodes))


def replace_node(graph: GraphProto, old: NodeProto, new: NodeProto) -> None:
    """Put `new` where `old` was, keeping the node order."""
    for i, node in enumerate(graph.node):
        if node is old:
            graph.node[i].CopyFrom(new)
            return
    raise KeyError(f"node {node_label(old)} is not in graph {graph.name!r}")


def remove_unused(model: onnx.ModelProto, names: Set[str]) -> None:
    """Drop the initializers and Constant nodes among `names` that nothing reads any more.

    Initializers listed as graph inputs (IR < 4 models) are kept: removing them
    would turn them into required inputs.
    """
    if not names:
        return
    uses = use_counts(model)
    dead = {n for n in names if uses[n] == 0}
    if not dead:
        return
    for scope in walk_scopes(model.graph):
        g = scope.graph
        inputs = {i.name for i in g.input}
        _delete_where(g.initializer, lambda i: i.name in dead and i.name not in inputs)
        _delete_where(g.node, lambda n: n.op_type == "Constant" and n.domain in ("", "ai.onnx")
                      and len(n.output) == 1 and n.output[0] in dead)
        _delete_where(g.value_info, lambda v: v.name in dead)


def opset_version(model: onnx.ModelProto, domain: str = "") -> Optional[int]:
    for op in model.opset_import:
        if op.domain == domain or (domain == "" and op.domain == "ai.onnx"):
            return op.version
    return None


@dataclass
class TypeTable:
    """Element types and shapes of tensors by name, from onnx shape inference."""

    types: Dict[str, onnx.TypeProto] = field(default_factory=dict)

    @classmethod
    def infer(cls, model: onnx.ModelProto) -> "TypeTable":
        from ..op.schema import register_schema

        register_schema()
        table = cls()
        try:
            inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False)
        except Exception:  # shapes are a convenience; a model they fail on is still rewritten
            inferred = model
        for scope in walk_scopes(inferred.graph):
            g = scope.graph
            for v in list(g.input) + list(g.output) + list(g.value_info):
                if v.type.HasField("tensor_type"):
                    for d in v.type.tensor_type.shape.dim:
                        if d.dim_param.startswith("unk__"):  # a name shape inference made up: unknown
                            d.ClearField("dim_param")
                    table.types.setdefault(v.name, v.type)
            for init in g.initializer:
                t = onnx.TypeProto()
                t.tensor_type.elem_type = init.data_type
                for d in init.dims:
                    t.tensor_type.shape.dim.add().dim_value = d
                table.types.setdefault(init.name, t)
        return table

    def elem_type(self, name: str) -> Optional[int]:
        t = self.types.get(name)
        return t.tensor_type.elem_type or None if t is not None else None

    def dims(self, name: str) -> Optional[List]:
        """Dimensions as ints, symbolic names (str) or None; None when the rank is unknown."""
        t = self.types.get(name)
        if t is None or not t.tensor_type.HasField("shape"):
            return None
        out = []
        for d in t.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                out.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                out.append(d.dim_param)
            else:
                out.append(None)
        return out
