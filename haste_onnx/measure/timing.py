"""The one alternating timer (eval's demo latency, bench, the probe) and its statistics."""
from __future__ import annotations

import time
from typing import List, Optional, Sequence, Tuple

import numpy as np


def batch_of(images: np.ndarray, batch: int) -> Tuple[np.ndarray, bool]:
    """The first `batch` images (float32, contiguous), repeated when there are fewer; and whether they were."""
    images = np.asarray(images, np.float32)
    if len(images) == 0:
        raise ValueError("no images")
    if len(images) >= batch:
        return np.ascontiguousarray(images[:batch]), False
    reps = -(-batch // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:batch]), True


def time_alternating(first, second, feed: dict, repeats: int, warmup: int,
                     clock=time.perf_counter, second_feed: Optional[dict] = None) -> Tuple[List[float], List[float]]:
    """Milliseconds per run for two sessions, alternating; the order within a pair flips every pair.
    `second_feed` (default `feed`) is what the second session runs on."""
    feeds = {id(first): feed, id(second): feed if second_feed is None else second_feed}
    for _ in range(warmup):
        first.run(None, feeds[id(first)])
        second.run(None, feeds[id(second)])
    a: List[float] = []
    b: List[float] = []
    for i in range(repeats):
        order = ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a))
        for sess, times in order:
            t0 = clock()
            sess.run(None, feeds[id(sess)])
            times.append(1e3 * (clock() - t0))
    return a, b


def latency_stats(samples: Sequence[float]) -> dict:
    v = np.asarray(samples, np.float64)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median_ms": float(med), "p25_ms": float(q1), "p75_ms": float(q3), "min_ms": float(v.min()),
            "max_ms": float(v.max()), "mean_ms": float(v.mean()), "std_ms": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "iqr_rel": float((q3 - q1) / med) if med > 0 else None, "n": int(v.size),
            "samples_ms": [float(x) for x in v]}


def pair_ratios(first: Sequence[float], second: Sequence[float]) -> dict:
    """Quartiles of the per-pair ratios first / second (above 1: the second is faster)."""
    ratios = np.asarray(first, np.float64) / np.maximum(np.asarray(second, np.float64), 1e-12)
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    return {"median": float(med), "p25": float(q1), "p75": float(q3)}
