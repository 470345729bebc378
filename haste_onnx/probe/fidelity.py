"""How faithful a rewritten model is to the original on the probe inputs, against a target users can read.

For an output shaped like class scores ([N, K], K > 1): top-1 agreement with
the original and the relative error of the scores. For any other output: the
relative error. The relative error of one image is ||y' - y|| / ||y||; an
output's error is the mean over the images (its maximum is reported too).
The target: top-1 agreement of at least `min_agreement` on every classifier
output, and a mean relative error of at most `max_error` on every output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import onnx

# Defaults: at least 99% of the probe's images keep their class, and the outputs move by at most 10% of their
# size on average (docs/cli.md, "fidelity").
DEFAULT_MIN_AGREEMENT = 0.99
DEFAULT_MAX_ERROR = 0.10


@dataclass(frozen=True)
class FidelityTarget:
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    max_error: float = DEFAULT_MAX_ERROR

    def met(self, measured: dict) -> bool:
        """Top-1 agreement (classifier outputs) and the share of detections kept (detection outputs whose
        original found boxes on these images) at least `min_agreement`; every output's mean relative error
        at most `max_error`."""
        agreements = [measured.get("top1_agreement"), measured.get("detections_kept")]
        return (all(a is None or a >= self.min_agreement - 1e-12 for a in agreements)
                and all(e["mean"] <= self.max_error for e in measured["relative_error"].values()))

    def to_json(self) -> dict:
        return {"min_top1_agreement": self.min_agreement, "max_relative_error": self.max_error}


def is_classifier(shape) -> bool:
    return len(shape) == 2 and shape[1] > 1


def compare(reference: List[np.ndarray], outputs: List[np.ndarray], names: List[str]) -> dict:
    """Top-1 agreement (over classifier outputs; None when there is none), the share of the original's
    detections kept (over detection outputs, `measure.compare`: None when there is none, or when the original
    found no box on these images: `detection_outputs` then says there were some), and the relative error per
    output."""
    from ..measure.compare import detection_agreement, output_kind

    agreements, errors, kept, detection_outputs = [], {}, [], 0
    for name, a, b in zip(names, reference, outputs):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        kind = output_kind(a.shape)
        if kind in ("detection", "detection-boxes"):
            detection_outputs += 1
            found = detection_agreement(a, b, kind)["detections_kept"]
            if found is not None:
                kept.append(found)
        if is_classifier(a.shape):
            agreements.append(float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))))
        per_image = (np.linalg.norm((a - b).reshape(len(a), -1), axis=1)
                     / np.maximum(np.linalg.norm(a.reshape(len(a), -1), axis=1), 1e-30))
        errors[name] = {"mean": float(per_image.mean()), "max": float(per_image.max())}
    return {"images": int(len(reference[0])) if reference else 0,
            "top1_agreement": min(agreements) if agreements else None, "relative_error": errors,
            "detections_kept": min(kept) if kept else None, "detection_outputs": detection_outputs}


class FidelityCheck:
    """The original's outputs on the probe images, kept to compare rewritten models against."""

    def __init__(self, model: onnx.ModelProto, images: np.ndarray, threads: Optional[int]):
        from ..model_inputs import fixed_batch

        self.images = images
        self.batch = fixed_batch(model) or len(images)
        self.threads = threads
        self.names, self.reference = self._run(model)

    def _run(self, model: onnx.ModelProto):
        from ..runtime import inference_session

        session = inference_session(model, threads=self.threads)
        names = [o.name for o in session.get_outputs()]
        feed = session.get_inputs()[0].name
        runs = [session.run(names, {feed: self.images[i:i + self.batch]})
                for i in range(0, len(self.images), self.batch)]
        return names, [np.concatenate([r[k] for r in runs]) for k in range(len(names))]

    def measure(self, rewritten: onnx.ModelProto) -> Dict:
        names, outputs = self._run(rewritten)
        return compare(self.reference, outputs, names)


def fidelity_text(measured: dict) -> str:
    """One line: top-1 agreement and the largest mean relative error, on how many probe images."""
    worst = max(measured["relative_error"].items(), key=lambda kv: kv[1]["mean"])
    agreement = ("" if measured.get("top1_agreement") is None
                 else f"top-1 agreement {100 * measured['top1_agreement']:.1f}%, ")
    if measured.get("detections_kept") is not None:
        agreement += f"detections kept {100 * measured['detections_kept']:.1f}%, "
    return (f"{agreement}relative output error {worst[1]['mean']:.3f} (max {worst[1]['max']:.3f}) on "
            f"{measured['images']} probe images")


def most_decided(model: onnx.ModelProto, images: np.ndarray, keep: int, threads: Optional[int] = 2) -> np.ndarray:
    """The `keep` images on which `model` is most decided: the largest gap between its two highest softmax
    scores (on its first classifier output; all images, up to `keep`, when it has none).

    On synthetic noise a classifier often hesitates between two classes; any rounding flips such an image's
    top-1, which says nothing about the images it is used on (the shared ResNet-18 quantized to int8: 98.6%
    agreement on 1,024 noise images, 100% on their most decided half, 99.7% on the real test set).
    """
    check = FidelityCheck(model, images, threads)
    scores = next((r for r in check.reference if is_classifier(r.shape)), None)
    if scores is None or keep >= len(images):
        return images[:keep]
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    top2 = np.sort(p, axis=1)[:, -2:]
    order = np.argsort(-(top2[:, 1] - top2[:, 0]), kind="stable")
    return images[np.sort(order[:keep])]
