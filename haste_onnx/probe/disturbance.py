"""How much rewriting a layer disturbs a model's output on the probe."""
from __future__ import annotations

import numpy as np


def output_disturbance(reference: np.ndarray, output: np.ndarray) -> float:
    """Mean KL(softmax(reference) || softmax(output)) for [N, K] outputs, else relative squared error."""
    a, b = np.asarray(reference, np.float64), np.asarray(output, np.float64)
    if a.ndim == 2 and a.shape[1] > 1:
        la = a - a.max(axis=1, keepdims=True)
        lb = b - b.max(axis=1, keepdims=True)
        la -= np.log(np.exp(la).sum(axis=1, keepdims=True))
        lb -= np.log(np.exp(lb).sum(axis=1, keepdims=True))
        return float(np.mean(np.sum(np.exp(la) * (la - lb), axis=1)))
    scale = float(np.sum(a * a))
    return float(np.sum((a - b) ** 2) / scale) if scale > 0 else 0.0

