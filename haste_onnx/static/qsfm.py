"""QSFM (reconstruction, ../shared/notes/peers.md section 3, reading A): quantified similarity of feature maps.

For every space that may change (not fixed; not tied by a residual Add unless asked), the maps its readers see
(the tensor the next Conv/Gemm reads, after activation and pooling) are collected on probe images into a Gram
matrix G (C x C, streamed). For channel i and a kept channel j: scale s = G_ij / G_jj, relative residual
r_ij = 1 - G_ij^2 / (G_ii G_jj) (1 - cos^2, the similarity is 1 - r). Removing i and adding s times its
outgoing weights to j's (P3) leaves the residual energy G_ii * r_ij, counted relative to the layer's energy
trace(G): that is a channel's *disturbance*. Channels go in one global greedy order of disturbance per MAC
saved (a channel that something merged into stays; a channel whose partner went is re-scored), no layer
below `min_keep` of its channels. The order is computed once; a cut is a prefix of it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import onnx

from .spaces import Space


@dataclass
class Step:
    space: int
    channel: int
    partner: int
    scale: float
    disturbance: float
    macs: float


@dataclass
class QsfmOrder:
    steps: List[Step] = field(default_factory=list)
    skipped: Dict[int, str] = field(default_factory=dict)  # space -> why it is not pruned


def gram_matrices(model: onnx.ModelProto, spaces: List[Space], eligible: List[int], images: np.ndarray,
                  batch: int = 32, threads: Optional[int] = None) -> Dict[int, np.ndarray]:
    """G per eligible space, over every pixel of every image, at the tensor its readers read (summed over the
    tensors they read for a space tied by residual Adds: one scale then compensates all readers, approximately)."""
    from ..runtime import inference_session

    tensors = {k: sorted(spaces[k].read_tensors()) for k in eligible}
    work = onnx.ModelProto()
    work.CopyFrom(model)
    known = {o.name for o in work.graph.output}
    wanted = sorted({name for names in tensors.values() for name in names})
    for name in sorted(set(wanted) - known):
        work.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = inference_session(work, threads=threads)
    feed = session.get_inputs()[0].name
    grams = {k: 0.0 for k in eligible}
    for start in range(0, len(images), batch):
        values = dict(zip(wanted, session.run(wanted, {feed: images[start:start + batch]})))
        for k, names in tensors.items():
            for name in names:  # a tied space: the sum over every point its readers read it at
                a = values[name]
                a = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1).astype(np.float64)
                grams[k] = grams[k] + a @ a.T
    return grams


def _best_partner(g: np.ndarray, i: int, alive: np.ndarray) -> Tuple[int, float, float]:
    """(j, residual r_ij, scale) over the alive channels j != i."""
    gii = g[i, i]
    diag = np.maximum(np.diag(g), 1e-30)
    cos2 = g[i] ** 2 / (max(gii, 1e-30) * diag)
    cos2[~alive] = -1.0
    cos2[i] = -1.0
    j = int(np.argmax(cos2))
    return j, float(max(0.0, 1.0 - cos2[j])), float(g[i, j] / diag[j])


def greedy_order(grams: Dict[int, np.ndarray], costs: Dict[int, float], min_keep: float) -> List[Step]:
    """Every channel that may go, in order, with its partner and scale at the time it goes."""
    alive = {k: np.ones(len(g), bool) for k, g in grams.items()}
    locked = {k: np.zeros(len(g), bool) for k, g in grams.items()}
    floor = {k: max(1, int(np.ceil(min_keep * len(g)))) for k, g in grams.items()}
    trace = {k: max(float(np.trace(g)), 1e-30) for k, g in grams.items()}
    heap = []
    for k, g in grams.items():
        for i in range(len(g)):
            j, r, s = _best_partner(g, i, alive[k])
            d = g[i, i] * r / trace[k]
            heapq.heappush(heap, (d / max(costs[k], 1e-9), k, i))
    steps = []
    while heap:
        key, k, i = heapq.heappop(heap)
        g = grams[k]
        if not alive[k][i] or locked[k][i] or alive[k].sum() <= floor[k]:
            continue
        j, r, s = _best_partner(g, i, alive[k])
        d = g[i, i] * r / trace[k]
        new_key = d / max(costs[k], 1e-9)
        if new_key > key * (1 + 1e-9) + 1e-300:
            heapq.heappush(heap, (new_key, k, i))
            continue
        alive[k][i] = False
        locked[k][j] = True
        steps.append(Step(k, i, j, s, d, costs[k]))
    return steps


def greedy_order_lstsq(grams: Dict[int, np.ndarray], costs: Dict[int, float], min_keep: float,
                       ridge: float = 1e-6) -> List[Step]:
    """As `greedy_order`, scoring a channel by what is left of it after least squares on *all* channels still
    alive in its layer: 1 / [G_A^-1]_ii (G_A: the Gram matrix of the alive set A), relative to trace(G);
    the inverse is downdated after each removal (O(C^2))."""
    heap = []
    state = {}
    for k, g in grams.items():
        c = len(g)
        lam = ridge * max(float(np.trace(g)) / c, 1e-30)
        p = np.linalg.inv(g + lam * np.eye(c))
        alive = list(range(c))
        state[k] = {"p": p, "alive": alive, "floor": max(1, int(np.ceil(min_keep * c))),
                    "trace": max(float(np.trace(g)), 1e-30)}
        for pos, i in enumerate(alive):
            d = 1.0 / p[pos, pos] / state[k]["trace"]
            heapq.heappush(heap, (d / max(costs[k], 1e-9), k, i))
    steps = []
    while heap:
        key, k, i = heapq.heappop(heap)
        st = state[k]
        if i not in st["alive"] or len(st["alive"]) <= st["floor"]:
            continue
        pos = st["alive"].index(i)
        d = 1.0 / st["p"][pos, pos] / st["trace"]
        new_key = d / max(costs[k], 1e-9)
        if new_key > key * (1 + 1e-9) + 1e-300:
            heapq.heappush(heap, (new_key, k, i))
            continue
        p = st["p"]
        rest = [q for q in range(len(st["alive"])) if q != pos]
        st["p"] = p[np.ix_(rest, rest)] - np.outer(p[rest, pos], p[pos, rest]) / p[pos, pos]
        st["alive"].pop(pos)
        steps.append(Step(k, i, -1, 0.0, d, costs[k]))
    return steps


def edits_for(steps: List[Step], spaces: List[Space]):
    """The Edit per space for a prefix of the order."""
    from .surgery import Edit

    merged: Dict[int, Dict[int, Tuple[int, float]]] = {}
    for step in steps:
        merged.setdefault(step.space, {})[step.channel] = (step.partner, step.scale)
    return {k: Edit.merge(spaces[k].channels, m) for k, m in merged.items()}


def lstsq_edits(steps: List[Step], spaces: List[Space], grams: Dict[int, np.ndarray], ridge: float = 1e-6):
    """The Edit per space where every removed channel is rebuilt from *all* kept channels of its layer by least
    squares on the probe maps (B = G_KK^-1 G_KR, a small ridge for stability): the next layer's weights of a
    removed channel i are spread over the kept ones, W_next[:, K] += W_next[:, i] B[:, i]. Not in QSFM as
    published (one partner per pruned filter); the same data, a better fit (cf. LBYL in peers.md)."""
    from .surgery import Edit

    removed: Dict[int, List[int]] = {}
    for step in steps:
        removed.setdefault(step.space, []).append(step.channel)
    edits = {}
    for k, gone in removed.items():
        g = grams[k]
        c = len(g)
        keep = [i for i in range(c) if i not in set(gone)]
        g_kk = g[np.ix_(keep, keep)]
        g_kr = g[np.ix_(keep, gone)]
        lam = ridge * max(float(np.trace(g_kk)) / max(len(keep), 1), 1e-30)
        b = np.linalg.solve(g_kk + lam * np.eye(len(keep)), g_kr)  # [K, R]
        m = np.zeros((c, len(keep)))
        m[keep, np.arange(len(keep))] = 1.0
        m[gone, :] = b.T
        edits[k] = Edit(keep, m)
    return edits


def prefix_for_cut(steps: List[Step], total_macs: float, cut: float) -> int:
    saved, n = 0.0, 0
    for step in steps:
        if saved >= cut * total_macs:
            break
        saved += step.macs
        n += 1
    return n


def search_prefix(steps: List[Step], build: Callable[[int], onnx.ModelProto], accept: Callable[[onnx.ModelProto], bool],
                  tries: int = 8, progress=None) -> int:
    """The longest prefix whose model `accept`s, by bisection over the prefix length (tries at most)."""
    lo, hi = 0, len(steps)
    if hi and accept(build(hi)):
        return hi
    for _ in range(tries):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        ok = accept(build(mid))
        if progress:
            progress(f"qsfm: {mid} channel(s) removed: {'within' if ok else 'outside'} the fidelity target")
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo
