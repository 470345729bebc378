"""Latency of a model before and after the HASTE rewrite, measured in one process.

`bench(model, images, options)` returns plain data (the `--json` object of
`haste-onnx bench`, without the model and data descriptions):

1. **The two models.** `model` is rewritten with the hashing options and the
   layer selection of `haste-onnx rewrite` (in memory). A model that already
   holds HasteConv nodes is compared, as it is, with its copy stripped back to
   Conv (`strip_model`); the hashing options are then not used.
2. **The batch.** The first `batch` prepared images (repeated when there are
   fewer).
3. **Measured FLOPs.** The rewritten model runs once on the batch with the
   HasteConv `stats` outputs exposed (as `haste-onnx eval` does). This gives
   the cut `r` of all conv MACs, counting the hashing, centring and merging
   ops as MACs. The ideal speed-up is `1 / (1 - r)`: what the whole model
   would gain if its time were all conv time, spent in proportion to MACs.
   Since other ops take time too, the conv share `s` of the original's
   kernel time (from the profiler) is reported. So is the bound
   `1 / ((1 - s) + s (1 - r))` (Amdahl) that this share gives.
4. **Latency.** Two sessions with identical options: all graph
   optimisations, `threads` intra-op threads, one inter-op thread, and the
   op library registered in both. After `warmup` runs of each, they run the
   batch `repeats` times each, alternating; the order within a pair flips
   every pair. Reported: median, quartiles, min, max, mean and std per model,
   the ratio of the medians (`speedup` = original / rewritten), and the
   median of the per-pair ratios. The clock is `time.perf_counter` (wall), or
   `time.process_time` (CPU time of the whole process, all threads) with
   `cpu_time`. That clock is robust to other processes on a busy machine
   when `threads == 1`; with more threads it also counts threads that
   spin while waiting.
5. **Per layer.** A second pair of sessions with onnxruntime's profiler on
   (so profiling does not distort step 4) runs the batch `profile_runs`
   times each, after a warm-up. Each `<node>_kernel_time` event is matched
   to the model's conv layers. The ORT NCHWc transformer renames a Conv
   after its output (`<output>_nchwc`) or, when an activation or Add was
   fused into it, after that op's output; matching follows those chains and
   checks the weight shape. Events that match no conv go into "other", by
   op type. Times are mean milliseconds per run.
6. **Memory.** Each model runs in a child process of its own: load, one
   session, `memory_runs` runs of the batch. The child reports its peak
   resident set size and what the session and its runs added to it (see
   `peak_memory`).

Any model with its own inputs: `feed` (input name -> array, in the model's own layout, NCHW or NHWC, one
entry per input) replaces `images`; each array's first `batch` rows are the batch (repeated when fewer), and
the arrays' shapes fix the dims the graph leaves free, for the MAC accounting too (`fix_input_dims`: the
static MACs are counted on a copy whose free dims are those of the batch, so they match what the counters
measured). `against` (a model) is compared as it is with `model`: a HasteConv rewrite made elsewhere, or
another kind of model (onnxruntime's int8 quantization); without HasteConv in it there are no counters, and
the MAC figures are None.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import onnx

from ..model_inputs import input_info
from ..plan import Plan, plan_model
from .conv_work import conv_layers, layer_rows, static_by_layer, totals
from .instrument import add_stats_outputs, count_haste
from .memory import peak_memory
from .profile import layer_table, profile_pair
from .sessions import bench_session
from .timing import batch_of, latency_stats, time_alternating

__all__ = ["BenchOptions", "bench", "prepare_pair", "measured_macs", "fix_input_dims", "batch_feed"]

IDEAL_BASIS = "conv_mac_reduction_with_overheads"


@dataclass
class BenchOptions:
    plan: Optional[Plan] = None  # how to rewrite the model (None: `plan_model`'s defaults)
    batch: int = 1
    threads: int = 2
    warmup: int = 5
    repeats: int = 50
    cpu_time: bool = False
    profile_runs: int = 10  # 0: no per-layer profile
    memory: bool = True
    memory_runs: int = 3

    def validate(self) -> None:
        for name, least in (("batch", 1), ("threads", 1), ("warmup", 0), ("repeats", 1), ("profile_runs", 0),
                            ("memory_runs", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}, got {getattr(self, name)}")

    def to_json(self, prebuilt: bool) -> dict:
        return {"batch": self.batch, "threads": self.threads, "inter_op_threads": 1, "warmup": self.warmup,
                "repeats": self.repeats, "clock": "process CPU time" if self.cpu_time else "wall (perf_counter)",
                "graph_optimization": "ORT_ENABLE_ALL", "profile_runs": self.profile_runs,
                "memory_runs": self.memory_runs if self.memory else 0,
                "plan": "from the model" if prebuilt else (self.plan.origin if self.plan is not None else None),
                "prebuilt": prebuilt}


def fix_input_dims(model: onnx.ModelProto, feed: Dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs named in `feed` have every dim but the batch set from the arrays'
    shapes, with the inferred `value_info` dropped (inferred again for those sizes): static MACs per image then
    count the sizes the model runs at. `model` itself when nothing is free."""
    changed = False
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name not in feed or not value.type.tensor_type.HasField("shape"):
            continue
        shape = np.shape(feed[value.name])
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            continue
        for axis in range(1, len(dims)):
            if not (dims[axis].HasField("dim_value") and dims[axis].dim_value > 0):
                dims[axis].Clear()
                dims[axis].dim_value = int(shape[axis])
                changed = True
    if not changed:
        return model
    del fixed.graph.value_info[:]
    return fixed


def batch_feed(feed: Dict[str, np.ndarray], batch: int):
    """({name: the first `batch` rows of its array, repeated when fewer}, whether any was repeated)."""
    out, repeated = {}, False
    for name, value in feed.items():
        value = np.asarray(value)
        if value.ndim == 0 or len(value) == 0:
            raise ValueError(f"input {name!r}: no rows to make a batch of")
        if len(value) >= batch:
            out[name] = np.ascontiguousarray(value[:batch])
        else:
            out[name] = np.ascontiguousarray(np.concatenate([value] * -(-batch // len(value)))[:batch])
            repeated = True
    return out, repeated


def measured_macs(original: onnx.ModelProto, rewritten: onnx.ModelProto, x, threads: int) -> dict:
    """The HasteConv counters over batch `x` (the first input's array, or a feed: name -> array): per-layer
    rows and totals as `haste-onnx eval` computes them; the static MACs at the batch's sizes."""
    from ..op.stats import STATS_SIZE
    from ..runtime import inference_session

    feed = x if isinstance(x, dict) else {input_info(original)[0]: x}
    n = len(next(iter(feed.values())))
    original, rewritten = fix_input_dims(original, feed), fix_input_dims(rewritten, feed)
    static_rows = conv_layers(original)
    original_macs = sum(r["macs"] for r in static_rows if r["macs"] is not None)
    measured, pairs = add_stats_outputs(rewritten)
    session = inference_session(measured, threads=threads)
    out = session.run([s for _, s in pairs], feed) if pairs else []
    counted = np.asarray([np.asarray(v, np.int64).reshape(-1) for v in out], np.int64).reshape(len(pairs), STATS_SIZE)
    static = static_by_layer(static_rows)
    layers = layer_rows(pairs, counted, static, n, rewritten)
    for (out_name, _), row in zip(pairs, layers):
        row["output"] = out_name
    main, nested = count_haste(rewritten)
    return {"layers": layers, "totals": totals(layers, original_macs), "unmeasured_layers": nested,
            "layers_with_unknown_macs": sum(1 for r in static_rows if r["macs"] is None)}


def prepare_pair(model: onnx.ModelProto, options: BenchOptions, against: Optional[onnx.ModelProto] = None):
    """(original, rewritten, rewrite report or None, prebuilt) as the benchmark compares them."""
    from ..rewrite import rewrite_model, strip_model

    if against is not None:
        return model, against, None, True
    if count_haste(model) != (0, 0):
        original, _ = strip_model(model)
        return original, model, None, True
    rewritten, report = rewrite_model(model, options.plan if options.plan is not None else plan_model(model))
    return model, rewritten, report, False


def bench(model: onnx.ModelProto, images: Optional[np.ndarray], options: Optional[BenchOptions] = None,
          progress=None, feed: Optional[Dict[str, np.ndarray]] = None,
          against: Optional[onnx.ModelProto] = None) -> dict:
    """Benchmark `model` against its rewrite (or `against`) on the first `options.batch` of `images` (float32
    NCHW, the first input) or of each array of `feed` (name -> array in the model's layout)."""
    options = options or BenchOptions()
    options.validate()
    say = progress or (lambda text: None)
    original, rewritten, report, prebuilt = prepare_pair(model, options, against)
    if feed:
        feed, repeated = batch_feed(feed, options.batch)
        x = next(iter(feed.values()))
    else:
        x, repeated = batch_of(images, options.batch)
        feed = {input_info(original)[0]: x}
    for value in original.graph.input:
        dims = value.type.tensor_type.shape.dim
        fixed = dims[0].dim_value if dims and dims[0].HasField("dim_value") else 0
        if value.name in feed and fixed not in (0, options.batch):
            raise ValueError(f"the model's input {value.name!r} has a fixed batch of {dims[0].dim_value}; "
                             f"use --batch {dims[0].dim_value}")
    haste = count_haste(rewritten)[0] > 0

    if haste:
        say("measuring the conv MACs of the rewritten model on the batch ...")
        macs = measured_macs(original, rewritten, feed, options.threads)
        t = macs["totals"]
        r = t[IDEAL_BASIS]
    else:  # e.g. an int8 model given with `against`: no counters
        macs = {"layers": [], "unmeasured_layers": 0, "layers_with_unknown_macs": None}
        t, r = {}, None
    ideal = 1 / (1 - r) if r is not None and r < 1 else None

    clock = time.process_time if options.cpu_time else time.perf_counter
    say(f"timing: {options.warmup} warm-up + {options.repeats} alternating runs of each model ...")
    s_orig, s_rew = bench_session(original, options.threads), bench_session(rewritten, options.threads)
    t_orig, t_rew = time_alternating(s_orig, s_rew, feed, options.repeats, options.warmup, clock)
    del s_orig, s_rew
    lo, lr = latency_stats(t_orig), latency_stats(t_rew)
    speedup = lo["median_ms"] / lr["median_ms"] if lr["median_ms"] > 0 else None
    pair = np.asarray(t_orig) / np.maximum(np.asarray(t_rew), 1e-12)
    q1, qm, q3 = np.percentile(pair, [25, 50, 75])

    layers = None
    if options.profile_runs:
        say(f"profiling: {options.profile_runs} runs of each model in separate sessions ...")
        prof = profile_pair(original, rewritten, feed, options.threads, options.profile_runs)
        layers = layer_table(original, rewritten, prof, macs) if haste else None
    share = layers["original"]["conv_share"] if layers else None
    amdahl = 1 / ((1 - share) + share * (1 - r)) if share is not None and r is not None else None

    memory = None
    if options.memory and len(feed) == 1:
        say("peak memory: each model in a child process ...")
        mo = peak_memory(original, x, options.threads, options.memory_runs)
        mr = peak_memory(rewritten, x, options.threads, options.memory_runs)
        memory = {"original": mo, "rewritten": mr,
                  "original_peak_mb": mo["peak_mb"], "rewritten_peak_mb": mr["peak_mb"],
                  "ratio": mr["peak_mb"] / mo["peak_mb"] if mo["peak_mb"] else None,
                  "original_session_mb": mo["session_mb"], "rewritten_session_mb": mr["session_mb"],
                  "session_ratio": (mr["session_mb"] / mo["session_mb"]
                                    if mo["session_mb"] and mr["session_mb"] is not None else None),
                  "method": "one child process per model: load, one session, run the batch; peak = the child's peak "
                            "resident size (VmHWM), session = peak since the session was made minus the resident "
                            "size before"}

    saving = 1 - 1 / speedup if speedup else None
    return {
        "settings": {**options.to_json(prebuilt), "against": against is not None},
        "batch": {"images": int(len(x)), "repeated": repeated, "shape": list(x.shape),
                  "inputs": {k: list(v.shape) for k, v in feed.items()}},
        "rewrite": report.summary() if report is not None else None,
        "latency_original_ms": lo["median_ms"],
        "latency_rewritten_ms": lr["median_ms"],
        "speedup": speedup,
        "latency": {"original": lo, "rewritten": lr,
                    "pair_speedup": {"median": float(qm), "p25": float(q1), "p75": float(q3)},
                    "per_image_original_ms": lo["median_ms"] / len(x),
                    "per_image_rewritten_ms": lr["median_ms"] / len(x)},
        "flops": {**t, "layers": macs["layers"], "unmeasured_layers": macs["unmeasured_layers"],
                  "layers_with_unknown_macs": macs["layers_with_unknown_macs"]},
        "ideal": {"basis": IDEAL_BASIS, "reduction": r, "speedup": ideal,
                  "description": "1 / (1 - r), r = measured cut of all conv MACs, hashing/centring/merging "
                                 "ops counted as MACs",
                  "measured_over_ideal": speedup / ideal if speedup and ideal else None,
                  "time_saving": saving,
                  "saving_fraction_of_ideal": saving / r if saving is not None and r else None,
                  "conv_share_original": share,
                  "amdahl_speedup": amdahl,
                  "measured_over_amdahl": speedup / amdahl if speedup and amdahl else None},
        "profile": layers,
        "memory": memory,
    }
