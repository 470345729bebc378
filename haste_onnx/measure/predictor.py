"""An onnxruntime session with the op library that predicts classes in batches and sums the `stats` outputs."""
from __future__ import annotations

import time
from typing import Optional, Sequence, Tuple

import numpy as np
import onnx

from ..op.stats import STATS_SIZE


class Predictor:
    """An onnxruntime session (op library registered) that predicts classes in batches and sums `stats`."""

    def __init__(self, model: onnx.ModelProto, threads: Optional[int] = 2,
                 stats: Sequence[Tuple[str, str]] = ()):
        from ..runtime import inference_session

        self.session = inference_session(model, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.logits_name = self.session.get_outputs()[0].name
        self.stats = list(stats)

    def run(self, x: np.ndarray) -> list:
        return self.session.run([self.logits_name] + [s for _, s in self.stats], {self.input_name: x})

    def predict(self, images: np.ndarray, batch: int) -> Tuple[np.ndarray, np.ndarray, float]:
        """(top-1 classes [N], summed stats [layers, 7], seconds)."""
        preds = np.empty(len(images), np.int64)
        totals = np.zeros((len(self.stats), STATS_SIZE), np.int64)
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            out = self.run(np.ascontiguousarray(images[i:i + batch]))
            logits = np.asarray(out[0])
            preds[i:i + batch] = logits.reshape(logits.shape[0], -1).argmax(axis=1)
            for k, s in enumerate(out[1:]):
                totals[k] += np.asarray(s, np.int64).reshape(-1)
        return preds, totals, time.perf_counter() - start
