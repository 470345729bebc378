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


def bench_levels(model: onnx.ModelProto, x: np.ndarray, levels: Sequence[float], threads: int = 1,
                 repeats: int = 50, warmup: int = 5, clock=None, progress=None) -> dict:
    """Latency per level of one session of the steerable model, each level timed in rotation with the original
    and with the level's branch alone (what `rewrite --plan` of that level's plan writes: the same nodes), all
    three with the same session options; then every level again with the level changed before every call
    (`switching`: what moving the level costs). Also the level's conv MACs on `x` (kernel counters)."""
    import time

    from ..op.level import LEVEL_INPUT
    from ..rewrite.steer import level_info, select_level
    from .bench import measured_macs
    from .sessions import bench_session
    from .timing import latency_stats, pair_ratios

    if level_info(model) is None:
        raise ValueError("--levels needs a steerable model (rewrite --steerable)")
    clock = clock or time.perf_counter
    say = progress or (lambda text: None)
    original = select_level(model, 0.0)
    name = original.graph.input[0].name
    steer = bench_session(model, threads)
    base = bench_session(original, threads)
    rows = []
    for level in levels:
        say(f"timing level {level:g} ...")
        branch = select_level(model, level)
        alone = bench_session(branch, threads)
        feeds = [(base, {name: x}), (alone, {name: x}), (steer, {name: x, LEVEL_INPUT: np.array(level, np.float32)})]
        times = _rotate(feeds, repeats, warmup, clock)
        macs = measured_macs(original, branch, x, threads)["totals"] if level > 0 else None
        rows.append({"level": level, "original": latency_stats(times[0]), "alone": latency_stats(times[1]),
                     "steerable": latency_stats(times[2]),
                     "steerable_over_alone": pair_ratios(times[2], times[1]),
                     "steerable_over_original": pair_ratios(times[2], times[0]),
                     "conv_macs": None if macs is None else macs["rewritten_conv_macs_with_overheads"],  # per image
                     "conv_mac_cut": 0.0 if macs is None else macs["conv_mac_reduction_with_overheads"]})
    say("timing with the level changed before every call ...")
    switching = _rotate([(steer, {name: x, LEVEL_INPUT: np.array(level, np.float32)}) for level in levels],
                        repeats, warmup, clock)
    for row, samples in zip(rows, switching):
        row["switching"] = latency_stats(samples)
    return {"levels": rows, "batch": list(x.shape), "threads": threads, "repeats": repeats, "warmup": warmup}


def _rotate(feeds, repeats: int, warmup: int, clock) -> list:
    """Milliseconds per run of each (session, feed), run in turn; the starting one rotates every round."""
    for _ in range(warmup):
        for session, feed in feeds:
            session.run(None, feed)
    times = [[] for _ in feeds]
    for i in range(repeats):
        for k in range(len(feeds)):
            j = (i + k) % len(feeds)
            session, feed = feeds[j]
            t0 = clock()
            session.run(None, feed)
            times[j].append(1e3 * (clock() - t0))
    return times
