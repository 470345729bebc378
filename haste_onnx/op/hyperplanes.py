"""Drawing the sparse ternary hyperplanes that HasteConv hashes with."""
from __future__ import annotations

import numpy as np

from .geometry import MAX_HYPERPLANES


def draw_hyperplanes(num_hyperplanes: int, dim: int, sparsity: float, seed: int) -> np.ndarray:
    """An [L, dim] float32 matrix: 0 with probability `sparsity`, else +1 or -1 equally often.

    Ternary entries make projecting an addition-only job, and make the sum
    exact and reproducible, so every kernel forms the same groups.

    Nested: the draw is always that of MAX_HYPERPLANES rows, cut to the first
    L, so draw(L') == draw(L)[:L'] for L' < L. A channel's L'-bit code is then
    a prefix of its L-bit code, and the groups at L' are unions of the groups
    at L (what lets one steerable model move along L: docs/steerable.md).
    """
    if not 1 <= num_hyperplanes <= MAX_HYPERPLANES:
        raise ValueError(f"the number of hyperplanes must be between 1 and {MAX_HYPERPLANES}, got {num_hyperplanes}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    rng = np.random.default_rng(seed)
    # Both draws at full size: the signs' draw must not depend on L either.
    u = rng.random((MAX_HYPERPLANES, dim))[:num_hyperplanes]
    signs = np.where(rng.random((MAX_HYPERPLANES, dim))[:num_hyperplanes] < 0.5, -1.0, 1.0)
    return np.where(u < sparsity, 0.0, signs).astype(np.float32)
