"""Before any channel surgery: every Conv's weights become static initializers and a BatchNormalization that
follows a Conv is folded into it (the rewriter's own rules, `haste_onnx.rewrite.normalize`), so that a
channel's filter is its whole affine pre-activation."""
from __future__ import annotations

from typing import List

import onnx

from ..rewrite.graphs import all_names, walk
from ..rewrite.normalize import StaticTensor, fold_batchnorm, materialize, resolve_static
from .spaces import is_conv


def normalize(model: onnx.ModelProto) -> List[str]:
    """In place: static Conv weights and folded BatchNormalization; returns one note per fold."""
    notes = []
    taken = all_names(model)
    for scope, node in list(walk(model.graph)):
        if not is_conv(node) or len(node.input) < 2:
            continue
        weight = resolve_static(scope, node.input[1])
        if not isinstance(weight, StaticTensor):
            continue
        materialize(model, weight)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = resolve_static(scope, node.input[2])
            if not isinstance(bias, StaticTensor):
                continue
            materialize(model, bias)
        if weight.array.ndim != 4:
            continue
        folded, note = fold_batchnorm(model, scope, node, weight, bias, taken)
        if folded:
            notes.append(note)
    return notes
