"""Accuracy and measured conv work of a steerable model at each of several levels (`eval --levels`).

One onnxruntime session of the steerable model runs every level: the level
is only another input value (`haste_level`), so the session is made once.
Its predictions give each level's accuracy. The conv MACs a level costs are
the kernel's own counters: the level's branch alone (`select_level`: the
same nodes, weights and hyperplanes, so the same groups) is run once more
with the HasteConv `stats` outputs, which the If branches cannot return, and
`branch_agreement` says how often its predictions equal the steerable
session's (1.0 expected: the same computation). Level 0 is the original.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import onnx

from .conv_work import conv_layers, layer_rows, static_by_layer, totals
from .instrument import add_stats_outputs
from .predictor import Predictor
from .statistics import accuracy_block, paired_bootstrap


class LevelPredictor(Predictor):
    """A Predictor of a steerable model that feeds `haste_level` with every call."""

    def __init__(self, model: onnx.ModelProto, threads: Optional[int] = 2):
        super().__init__(model, threads)
        self.level = np.array(1.0, np.float32)

    def run(self, x: np.ndarray) -> list:
        from ..op.level import LEVEL_INPUT

        return self.session.run([self.logits_name], {self.input_name: x, LEVEL_INPUT: self.level})


def evaluate_levels(model: onnx.ModelProto, images: np.ndarray, labels: np.ndarray, levels: Sequence[float],
                    batch: int = 100, threads: Optional[int] = 2, bootstrap: int = 2000, progress=None) -> dict:
    """Per level: accuracy (the steerable session's), its difference from the original, the measured conv MACs
    of the level's branch, and the agreement of that branch alone with the steerable session."""
    from ..op.level import choose_level
    from ..rewrite.steer import level_info, select_level

    info = level_info(model)
    if info is None:
        raise ValueError("--levels needs a steerable model (rewrite --steerable)")
    say = progress or (lambda text: None)
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.asarray(labels, np.int64).reshape(-1)
    offered = [entry["level"] for entry in info["levels"]]
    original = select_level(model, 0.0)
    static_rows = conv_layers(original)
    original_macs = sum(r["macs"] for r in static_rows if r["macs"] is not None)
    static = static_by_layer(static_rows)
    n = len(images)
    say(f"original model on {n} images ...")
    orig_pred, _, orig_seconds = Predictor(original, threads).predict(images, batch)
    orig_correct = orig_pred == labels
    steer = LevelPredictor(model, threads)
    rows = []
    for level in levels:
        runs = offered[choose_level(level, offered)]
        steer.level = np.array(level, np.float32)
        say(f"steerable model at level {level:g} (runs level {runs:g}) on {n} images ...")
        pred, _, seconds = steer.predict(images, batch)
        correct = pred == labels
        branch = select_level(model, level)
        measured, pairs = add_stats_outputs(branch)
        branch_pred, counted, _ = Predictor(measured, threads, pairs).predict(images, batch)
        layers = layer_rows(pairs, counted, static, n, branch) if pairs else []
        lo, hi = paired_bootstrap(orig_correct, correct, bootstrap)
        rows.append({"level": level, "runs_level": runs, **accuracy_block(correct),
                     "difference": {"accuracy": float(np.mean(correct) - np.mean(orig_correct)), "ci95": [lo, hi]},
                     "agreement": float(np.mean(pred == orig_pred)),
                     "branch_agreement": float(np.mean(pred == branch_pred)),
                     "haste_layers": len(pairs), "totals": totals(layers, original_macs), "seconds": seconds})
    return {"images": n, "levels_offered": offered, "default_level": info["default"],
            "original": {**accuracy_block(orig_correct), "conv_macs": original_macs, "seconds": orig_seconds},
            "levels": rows}


def levels_text(result: dict) -> list:
    """The rows of the per-level table: level, runs, top-1, difference, agreement, conv MACs, cut."""
    out = []
    for row in result["levels"]:
        t = row["totals"]
        macs = t["rewritten_conv_macs_with_overheads"]
        cut = t["conv_mac_reduction_with_overheads"] or 0.0
        out.append((f"{row['level']:g}", f"{row['runs_level']:g}", row["haste_layers"],
                    f"{100 * row['accuracy']:.2f}%", f"{100 * row['difference']['accuracy']:+.2f} pt",
                    f"{100 * row['agreement']:.2f}%", f"{macs / 1e6:.2f} M", f"{100 * cut:.1f}%"))
    return out
