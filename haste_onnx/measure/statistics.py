"""Intervals and spreads for accuracy figures."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

BOOTSTRAP_SEED = 0


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> Tuple[float, float]:
    """95% Wilson score interval of a proportion (fractions, not percent)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 2000,
                     seed: int = BOOTSTRAP_SEED) -> Tuple[float, float]:
    """95% percentile interval of mean(b) - mean(a) for paired 0/1 outcomes, resampling images.

    Drawing N images with replacement only matters through how many fall in
    each of the four (a, b) cells, so it is drawn as a multinomial of the cell
    counts: the same distribution as resampling indices, without the N x R array.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n = len(a)
    if n == 0 or resamples < 1:
        return (float("nan"), float("nan"))
    only_b = int(np.sum(~a & b))
    only_a = int(np.sum(a & ~b))
    rest = n - only_a - only_b
    draws = np.random.default_rng(seed).multinomial(n, [only_b / n, only_a / n, rest / n], size=resamples)
    diffs = (draws[:, 0] - draws[:, 1]) / n
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return (float(lo), float(hi))


def spread(values: Sequence[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def accuracy_block(correct: np.ndarray) -> dict:
    n, k = len(correct), int(np.sum(correct))
    lo, hi = wilson_interval(k, n)
    return {"accuracy": k / n if n else None, "correct": k, "ci95": [lo, hi], "ci_method": "Wilson score"}
