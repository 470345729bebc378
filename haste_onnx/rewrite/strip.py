"""Rule: turn every `haste::HasteConv` back into the `Conv` it came from.

Pattern handled: a HasteConv node (domain `haste`) anywhere in the model,
subgraphs included. It becomes a `Conv` (default domain) in the same place
with the same name, outputs and doc string, inputs `[X, W]` or `[X, W, B]`
(the hyperplanes input dropped, an empty bias dropped), its first output only (a
HasteConv whose optional `stats` output is read cannot be stripped: ModelRejected) and its attributes
minus `tile`, `centering`, `magnitude_split`, `merge`, `seed` and `sparsity`. The hyperplane
initializers go when nothing else reads them, and the `haste` opset import
goes when no node of that domain is left. A HasteConv with a residual input
`Z` or an `activation` (fused by rewrite/fuse_activation.py) becomes
`Conv -> Add(Z) -> Relu|Clip`, the Add and activation named after the node
(Clip's bounds as attributes before opset 11, as initializers from 11 on).
Everything else is untouched, so `strip(rewrite(m))` computes what `m`
computes (with BatchNormalization folded where the rewriter folded it).
"""
from __future__ import annotations

from typing import List

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

from ..op.geometry import DOMAIN
from .analysis import HASTE_ATTRS, is_haste
from ..errors import ModelRejected
from .graphs import (Scope, all_names, display_name, opset_version, remove_unused, replace_node, unique_name,
                     use_counts, walk, walk_scopes)


def strip_haste(model: onnx.ModelProto) -> List[str]:
    """Strip in place; returns the display names of the nodes turned back into Conv."""
    stripped, planes = [], set()
    uses = use_counts(model)
    taken = all_names(model)
    opset = opset_version(model) or 1
    for scope, node in list(walk(model.graph)):
        if not is_haste(node):
            continue
        inputs = list(node.input[:3])
        if len(node.input) > 3 and node.input[3]:
            planes.add(node.input[3])
        while len(inputs) > 2 and not inputs[-1]:
            inputs.pop()
        if len(node.output) > 1 and node.output[1] and uses[node.output[1]]:
            raise ModelRejected(f"the stats output of {display_name(scope, node)} is read; a Conv has none")
        followers = _unfused(scope, node, taken, opset)
        conv_output = followers[0].input[0] if followers else node.output[0]
        conv = helper.make_node("Conv", inputs, [conv_output], name=node.name)
        if node.HasField("doc_string"):
            conv.doc_string = node.doc_string
        conv.attribute.extend(a for a in node.attribute if a.name not in HASTE_ATTRS)
        stripped.append(display_name(scope, node))
        index = next(i for i, n in enumerate(scope.graph.node) if n is node)
        replace_node(scope.graph, node, conv)
        for offset, follower in enumerate(followers, start=1):
            scope.graph.node.insert(index + offset, follower)
    remove_unused(model, planes)
    if not any(n.domain == DOMAIN for s in walk_scopes(model.graph) for n in s.graph.node):
        for i in reversed([i for i, op in enumerate(model.opset_import) if op.domain == DOMAIN]):
            del model.opset_import[i]
    return stripped


def _unfused(scope: Scope, node: onnx.NodeProto, taken: set, opset: int) -> List[onnx.NodeProto]:
    """The Add and activation nodes a fused HasteConv stands for, in order; [] when it has neither. The first
    reads the Conv's new output; the last writes the HasteConv's output."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    activation = attrs.get("activation", b"")
    activation = activation.decode() if isinstance(activation, bytes) else activation
    residual = node.input[4] if len(node.input) > 4 and node.input[4] else ""
    if not residual and not activation:
        return []
    names = [unique_name(f"{node.output[0]}/conv", taken)]
    followers = []
    if residual:
        out = node.output[0] if not activation else unique_name(f"{node.output[0]}/add", taken)
        followers.append(helper.make_node("Add", [names[-1], residual], [out], name=unique_name(f"{node.name}/Add",
                                                                                                 taken)))
        names.append(out)
    if activation:
        name = unique_name(f"{node.name}/{activation}", taken)
        if activation == "Relu":
            followers.append(helper.make_node("Relu", [names[-1]], [node.output[0]], name=name))
        else:
            low, high = (float(v) for v in attrs["activation_params"])
            if opset < 11:
                followers.append(helper.make_node("Clip", [names[-1]], [node.output[0]], name=name, min=low, max=high))
            else:
                bounds = [unique_name(f"{name}/{which}", taken) for which in ("min", "max")]
                scope.graph.initializer.extend(
                    onnx.numpy_helper.from_array(np.array(v, np.float32), b) for v, b in zip((low, high), bounds))
                followers.append(helper.make_node("Clip", [names[-1], *bounds], [node.output[0]], name=name))
    return followers
