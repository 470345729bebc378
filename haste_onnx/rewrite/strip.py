"""Rule: turn every `haste::HasteConv` back into the `Conv` it came from.

Pattern handled: a HasteConv node (domain `haste`) anywhere in the model,
subgraphs included. It becomes a `Conv` (default domain) in the same place
with the same name, outputs and doc string, inputs `[X, W]` or `[X, W, B]`
(the hyperplanes input dropped, an empty bias dropped), its first output only (a
HasteConv whose optional `stats` output is read cannot be stripped: ModelRejected) and its attributes
minus `tile`, `centering`, `magnitude_split`, `merge`, `seed` and `sparsity`. The hyperplane
initializers go when nothing else reads them, and the `haste` opset import
goes when no node of that domain is left. Everything else is untouched, so
`strip(rewrite(m))` computes what `m` computes (with BatchNormalization
folded where the rewriter folded it).
"""
from __future__ import annotations

from typing import List

import onnx
from onnx import helper

from ..op.geometry import DOMAIN
from .analysis import HASTE_ATTRS, is_haste
from ..model_io import ModelRejected
from .graphs import display_name, remove_unused, replace_node, use_counts, walk, walk_scopes


def strip_haste(model: onnx.ModelProto) -> List[str]:
    """Strip in place; returns the display names of the nodes turned back into Conv."""
    stripped, planes = [], set()
    uses = use_counts(model)
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
        conv = helper.make_node("Conv", inputs, [node.output[0]], name=node.name)
        if node.HasField("doc_string"):
            conv.doc_string = node.doc_string
        conv.attribute.extend(a for a in node.attribute if a.name not in HASTE_ATTRS)
        stripped.append(display_name(scope, node))
        replace_node(scope.graph, node, conv)
    remove_unused(model, planes)
    if not any(n.domain == DOMAIN for s in walk_scopes(model.graph) for n in s.graph.node):
        for i in reversed([i for i, op in enumerate(model.opset_import) if op.domain == DOMAIN]):
            del model.opset_import[i]
    return stripped
