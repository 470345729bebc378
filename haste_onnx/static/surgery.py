"""Channel surgery: remove or merge output channels of the Convs that write one space, and fix every reader.

An edit of a space of C channels is (keep, M): `keep` lists the surviving channels in order (C' of them), and
M is the C x C' matrix that carries the readers' weights: a reader's slice of channel c becomes
sum_c W[:, c] * M[c, :]. For a plain removal M is the identity's kept columns; merging channel j into r
(P2 in ../shared/notes/peers.md) adds row j with a 1 (or a scale s, P3) in r's column, so a reader sees
`W[:, r] + s * W[:, j]`: exact when channel j equals s times channel r where the reader reads them.

Writers: each producer Conv's W and B are sliced to `keep` (or mixed by `rows`, e.g. merged centroids);
BatchNormalization nodes and per-channel constants inside the space are sliced. Readers: Conv input channels,
Gemm/MatMul column blocks after Flatten/Reshape (an explicit Reshape width follows), and the readers of a
Concat output at the space's current offset. Every changed weight is a new initializer; the ones nothing reads
any more are removed, and value_info of the graph is cleared (shapes changed; onnx infers them again).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..rewrite.graphs import all_names, remove_unused, unique_name
from .spaces import ConcatInput, ConvInput, FlatInput, GraphIndex, Space


@dataclass
class Edit:
    keep: List[int]
    matrix: np.ndarray  # [C, C'] float64
    # [C', C]: the producers' new rows as mixes of their current rows (e.g. a group's centroid); None: `keep`
    rows: Optional[np.ndarray] = None

    @classmethod
    def merge(cls, channels: int, merged: Dict[int, Tuple[int, float]], removed: Sequence[int] = ()) -> "Edit":
        """`merged[j] = (r, s)`: channel j goes, its readers' weights times s are added to r's (r is kept);
        `removed`: channels that go with nothing added anywhere."""
        gone = set(merged) | set(removed)
        keep = [c for c in range(channels) if c not in gone]
        pos = {c: k for k, c in enumerate(keep)}
        m = np.zeros((channels, len(keep)))
        for c, k in pos.items():
            m[c, k] = 1.0
        for j, (r, s) in merged.items():
            if r not in pos:
                raise ValueError(f"channel {j} merges into {r}, which does not stay")
            m[j, pos[r]] += s
        return cls(keep, m)


class Editor:
    """Weight edits on one model; every change is written as a new initializer in the node's graph."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.taken = all_names(model)
        self.old: set = set()

    def get(self, index: GraphIndex, name: str) -> np.ndarray:
        return index.static(name)

    def set(self, index: GraphIndex, node: onnx.NodeProto, position: int, value: np.ndarray) -> None:
        old = node.input[position]
        name = unique_name(f"{old}.static", self.taken)
        index.scope.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        node.input[position] = name
        self.old.add(old)

    def finish(self) -> None:
        remove_unused(self.model, self.old)
        self.old = set()
        for g in _graphs(self.model.graph):
            del g.value_info[:]


def _graphs(graph):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def apply_edit(editor: Editor, index: GraphIndex, space: Space, edit: Edit,
               concat_channels: Optional[Dict[str, int]] = None) -> None:
    """Apply `edit` to `space` (not fixed); `concat_channels`: current channel count of every tensor whose
    count changed so far (updated here), to place the space inside a Concat."""
    if space.fixed:
        raise ValueError(f"space is fixed: {space.fixed}")
    keep = np.asarray(edit.keep, np.int64)
    dtype = np.float32
    for conv in space.producers:
        w = editor.get(index, conv.input[1])
        b = editor.get(index, conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        if edit.rows is not None:
            w_new = np.einsum("dc,c...->d...", edit.rows, w.astype(np.float64))
            b_new = edit.rows @ b.astype(np.float64) if b is not None else None
        else:
            w_new, b_new = w[keep], (b[keep] if b is not None else None)
        editor.set(index, conv, 1, w_new.astype(dtype))
        if b is not None:
            editor.set(index, conv, 2, b_new.astype(dtype))
    for bn in space.norms:
        for k in range(1, 5):
            editor.set(index, bn, k, editor.get(index, bn.input[k])[keep])
    for node, k in space.constants:
        value = editor.get(index, node.input[k])
        axis = value.ndim - 3 if value.ndim >= 3 else None
        if axis is None or value.shape[axis] != space.channels:
            if value.ndim >= 1 and value.shape[-1] == space.channels and value.ndim <= 2:
                axis = value.ndim - 1  # a rank-2 tensor's channels
            else:
                continue
        editor.set(index, node, k, np.take(value, keep, axis=axis))
    for consumer in space.consumers:
        _apply_reader(editor, index, consumer, edit.matrix, 0, concat_channels)
    if concat_channels is not None:
        for name in space.tensors:
            concat_channels[name] = len(keep)


def _apply_reader(editor: Editor, index: GraphIndex, consumer, m: np.ndarray, offset: int,
                  concat_channels: Optional[Dict[str, int]]) -> None:
    if isinstance(consumer, ConvInput):
        node = consumer.node
        w = editor.get(index, node.input[1]).astype(np.float64)
        full = _embed(m, offset, w.shape[1])
        editor.set(index, node, 1, np.einsum("ochw,cd->odhw", w, full).astype(np.float32))
    elif isinstance(consumer, FlatInput):
        node = consumer.node
        w = editor.get(index, node.input[1]).astype(np.float64)
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        hw = consumer.hw
        if trans_b:
            full = _embed(m, offset, w.shape[1] // hw)
            out = np.einsum("ocp,cd->odp", w.reshape(w.shape[0], -1, hw), full).reshape(w.shape[0], -1)
        else:
            full = _embed(m, offset, w.shape[0] // hw)
            out = np.einsum("cpo,cd->dpo", w.reshape(-1, hw, w.shape[1]), full).reshape(-1, w.shape[1])
        editor.set(index, node, 1, out.astype(np.float32))
        if consumer.reshape is not None:
            shape = editor.get(index, consumer.reshape.input[1]).copy()
            if int(shape[1]) != -1:
                shape[1] = (out.shape[1] if trans_b else out.shape[0])
                editor.set(index, consumer.reshape, 1, shape.astype(np.int64))
    elif isinstance(consumer, ConcatInput):
        node = consumer.node
        counts = concat_channels if concat_channels is not None else {}
        start = 0
        for k in range(consumer.position):
            name = node.input[k]
            start += counts.get(name, index.channels_of(name) or 0)
        for inner in consumer.inner.consumers:
            _apply_reader(editor, index, inner, m, offset + start, concat_channels)


def _embed(m: np.ndarray, offset: int, total: int) -> np.ndarray:
    """M placed at rows/columns from `offset` of the identity of size `total` (other channels unchanged)."""
    if offset == 0 and m.shape[0] == total:
        return m
    c, c2 = m.shape
    full = np.zeros((total, total - c + c2))
    full[:offset, :offset] = np.eye(offset)
    full[offset:offset + c, offset:offset + c2] = m
    rest = total - offset - c
    full[offset + c:, offset + c2:] = np.eye(rest)
    return full


def apply_edits(model: onnx.ModelProto, spaces: List[Space], edits: Dict[int, Edit]) -> None:
    """In place: `edits[k]` applied to `spaces[k]` (found on this very model by `find_spaces`)."""
    from ..rewrite.graphs import TypeTable

    types = TypeTable.infer(model)
    editor = Editor(model)
    indexes: Dict[int, GraphIndex] = {}
    counts: Dict[str, int] = {}
    for k, edit in sorted(edits.items()):
        space = spaces[k]
        index = indexes.setdefault(id(space.scope.graph), GraphIndex(space.scope, types))
        apply_edit(editor, index, space, edit, counts)
    editor.finish()
