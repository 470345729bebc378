"""RED (reconstruction, ../shared/notes/peers.md section 2): data-free hashing and merging of neurons.

1. Adaptive scalar hashing, per Conv (after BatchNormalization folding): a Gaussian kernel density of the
   layer's weights with bandwidth h = resolution * std * n^(-1/5) (Silverman-style), evaluated on 2^14 grid
   points; its local minima cut the line into basins and every weight becomes its basin's mode. Larger
   `resolution` -> fewer basins, more identical neurons, more loss. 0 turns hashing off. Biases are not hashed.
2. Merging: within a space that may change (a residual-tied space compares the concatenation of all its
   producers' filters), a neuron (its filter and bias) joins the first kept neuron, taken in order of
   decreasing norm, within relative distance `threshold` (0: identical only: exact on the hashed model);
   the kept filter becomes the group's centroid and its readers' weights sum the members' (P2).
Uneven depthwise separation (step 3) is not built: it needs |U_c| < O k^2 / (k^2 + O) distinct kernels per
input channel to pay in dense ONNX, which hashed 3x3 kernels rarely meet (peers.md 2.3).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from .spaces import Space

GRID = 1 << 14


def hash_weights(w: np.ndarray, resolution: float) -> np.ndarray:
    """`w` with every weight replaced by the mode of its density basin."""
    flat = w.astype(np.float64).reshape(-1)
    lo, hi = float(flat.min()), float(flat.max())
    if resolution <= 0 or hi <= lo or flat.size < 2:
        return w
    h = resolution * float(flat.std()) * flat.size ** (-0.2)
    grid = np.linspace(lo, hi, GRID)
    step = grid[1] - grid[0]
    counts = np.bincount(np.clip(np.rint((flat - lo) / step).astype(np.int64), 0, GRID - 1), minlength=GRID)
    radius = int(min(GRID, max(1, np.ceil(4 * h / step))))
    x = np.arange(-radius, radius + 1) * step
    kernel = np.exp(-0.5 * (x / h) ** 2)
    n = GRID + len(kernel) - 1
    size = 1 << int(np.ceil(np.log2(n)))
    density = np.fft.irfft(np.fft.rfft(counts, size) * np.fft.rfft(kernel, size), size)[radius:radius + GRID]
    interior = np.flatnonzero((density[1:-1] < density[:-2]) & (density[1:-1] <= density[2:])) + 1
    cuts = grid[interior]
    basin = np.searchsorted(cuts, flat)
    edges = np.concatenate([[0], interior, [GRID]])
    modes = np.array([grid[a + int(np.argmax(density[a:b]))] for a, b in zip(edges[:-1], edges[1:])])
    return modes[basin].reshape(w.shape).astype(w.dtype)


def cluster(vectors: np.ndarray, threshold: float) -> Dict[int, int]:
    """member -> representative, for members within relative distance `threshold` of a representative."""
    norms = np.linalg.norm(vectors, axis=1)
    order = np.argsort(-norms, kind="stable")
    reps: List[int] = []
    assigned: Dict[int, int] = {}
    for i in order:
        if reps:
            r = np.asarray(reps)
            dist = np.linalg.norm(vectors[r] - vectors[i], axis=1)
            k = int(np.argmin(dist))
            limit = threshold * norms[r[k]]
            if dist[k] == 0.0 or dist[k] < limit:
                assigned[int(i)] = int(r[k])
                continue
        reps.append(int(i))
    return assigned


def red_edit(space: Space, weights: Dict[str, Tuple[np.ndarray, Optional[np.ndarray]]], threshold: float):
    """The Edit merging the space's (near-)identical neurons, or None when none are."""
    from .surgery import Edit

    parts = []
    for p in space.producers:
        w, b = weights[p.output[0]]
        parts.append(w.reshape(w.shape[0], -1))
        if b is not None:
            parts.append(b.reshape(-1, 1))
    vectors = np.concatenate(parts, axis=1).astype(np.float64)
    assigned = cluster(vectors, threshold)
    if not assigned:
        return None, 0
    edit = Edit.merge(space.channels, {j: (r, 1.0) for j, r in assigned.items()})
    groups: Dict[int, List[int]] = {}
    for j, r in assigned.items():
        groups.setdefault(r, [r]).append(j)
    pos = {c: k for k, c in enumerate(edit.keep)}
    rows = np.zeros((len(edit.keep), space.channels))
    for c, k in pos.items():
        rows[k, c] = 1.0
    for r, members in groups.items():  # the kept filter becomes the group's centroid
        rows[pos[r]] = 0.0
        rows[pos[r], members] = 1.0 / len(members)
    edit.rows = rows
    return edit, len(assigned)
