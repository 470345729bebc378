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
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx

from .op.geometry import DOMAIN, OP_TYPE
from .policy import Policy
from .rewrite.conv_to_haste import HashingOptions

__all__ = ["BenchOptions", "bench", "latency_stats", "parse_profile", "match_profile", "peak_memory",
           "time_alternating", "batch_of"]

IDEAL_BASIS = "conv_mac_reduction_with_overheads"
FUSABLE = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh", "HardSwish", "Add", "Sum",
           "BatchNormalization", "Mul"}


@dataclass
class BenchOptions:
    hashing: HashingOptions = field(default_factory=HashingOptions)
    policy: Policy = field(default_factory=Policy)
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
                "hashing": "from the model" if prebuilt else {**asdict(self.hashing), "tile": list(self.hashing.tile)},
                "policy": None if prebuilt else asdict(self.policy), "prebuilt": prebuilt}


# ---- sessions and timing --------------------------------------------------------------------------

def _make_session(model: onnx.ModelProto, opts):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def _sessions(model: onnx.ModelProto, threads: int, profile_prefix: Optional[str] = None):
    import onnxruntime as ort

    from .runtime import session_options

    opts = session_options(threads=threads, optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return _make_session(model, opts)


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
                     clock=time.perf_counter) -> Tuple[List[float], List[float]]:
    """Milliseconds per run for two sessions, alternating; the order within a pair flips every pair."""
    for _ in range(warmup):
        first.run(None, feed)
        second.run(None, feed)
    a: List[float] = []
    b: List[float] = []
    for i in range(repeats):
        order = ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a))
        for sess, times in order:
            t0 = clock()
            sess.run(None, feed)
            times.append(1e3 * (clock() - t0))
    return a, b


def latency_stats(samples: Sequence[float]) -> dict:
    v = np.asarray(samples, np.float64)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median_ms": float(med), "p25_ms": float(q1), "p75_ms": float(q3), "min_ms": float(v.min()),
            "max_ms": float(v.max()), "mean_ms": float(v.mean()), "std_ms": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "iqr_rel": float((q3 - q1) / med) if med > 0 else None, "n": int(v.size),
            "samples_ms": [float(x) for x in v]}


# ---- measured FLOPs ------------------------------------------------------------------------------

def measured_macs(original: onnx.ModelProto, rewritten: onnx.ModelProto, x: np.ndarray, threads: int) -> dict:
    """The HasteConv counters over batch `x`: per-layer rows and totals as `haste-onnx eval` computes them."""
    from .evaluate import Predictor, _layer_rows, _totals, add_stats_outputs, conv_layers, count_haste, static_by_layer

    static_rows = conv_layers(original)
    original_macs = sum(r["macs"] for r in static_rows if r["macs"] is not None)
    measured, pairs = add_stats_outputs(rewritten)
    _, totals, _ = Predictor(measured, threads, pairs).predict(x, len(x))
    static = static_by_layer(static_rows)
    layers = _layer_rows(pairs, totals, static, len(x), rewritten)
    for (out, _), row in zip(pairs, layers):
        row["output"] = out
    main, nested = count_haste(rewritten)
    return {"layers": layers, "totals": _totals(layers, original_macs), "unmeasured_layers": nested,
            "layers_with_unknown_macs": sum(1 for r in static_rows if r["macs"] is None)}


# ---- the profiler --------------------------------------------------------------------------------

def parse_profile(path, runs: int) -> Dict[str, dict]:
    """Node kernel times of the last `runs` model runs in an onnxruntime profile JSON.

    Returns {node name: {"op", "ms" (mean per run), "inputs" (input shapes)}}.
    """
    events = json.loads(Path(path).read_text())
    model_runs = sorted((e for e in events if e.get("name") == "model_run" and e.get("cat") == "Session"),
                        key=lambda e: e["ts"])
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs[-runs:]] if runs else []
    n = max(len(windows), 1)
    nodes: Dict[str, dict] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if windows and not any(lo <= e["ts"] <= hi for lo, hi in windows):
            continue
        args = e.get("args", {})
        key = name[:-len("_kernel_time")]
        row = nodes.setdefault(key, {"op": args.get("op_name", "?"), "ms": 0.0,
                                     "inputs": [next(iter(s.values())) for s in args.get("input_type_shape", [])
                                                if isinstance(s, dict) and s]})
        row["ms"] += e["dur"] / 1e3 / n
    run_ms = sum(hi - lo for lo, hi in windows) / 1e3 / n if windows else None
    return {"nodes": nodes, "run_ms": run_ms, "runs": len(windows)}


def _conv_nodes(model: onnx.ModelProto) -> List[onnx.NodeProto]:
    return [n for n in model.graph.node if (n.op_type == "Conv" and n.domain in ("", "ai.onnx"))
            or (n.op_type == OP_TYPE and n.domain == DOMAIN)]


def _weight_shapes(model: onnx.ModelProto) -> Dict[str, list]:
    return {i.name: list(i.dims) for i in model.graph.initializer}


def _name_keys(model: onnx.ModelProto, node: onnx.NodeProto, hops: int = 3) -> Dict[str, Tuple[int, str]]:
    """Names onnxruntime may give `node` (or the node it is fused into) -> (rank, ops fused on the way)."""
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    keys: Dict[str, Tuple[int, str]] = {}

    def add(key, rank, fused):
        if key and (key not in keys or keys[key][0] > rank):
            keys[key] = (rank, fused)

    add(node.name, 0, "")
    tensor = node.output[0] if node.output else ""
    add(tensor, 0, "")
    add(tensor + "_nchwc", 0, "")
    fused = []
    for hop in range(1, hops + 1):
        users = consumers.get(tensor, [])
        if len(users) != 1 or users[0].op_type not in FUSABLE or not users[0].output:
            break
        fused.append(users[0].op_type)
        tensor = users[0].output[0]
        label = "+".join(fused)
        add(tensor + "_nchwc", hop, label)
        add(tensor, hop, label)
        add(users[0].name, hop, label)
    return keys


def _fused_ops(model: onnx.ModelProto, conv: onnx.NodeProto, event: dict, profile: Dict[str, dict]) -> str:
    """The ops after `conv` that onnxruntime folded into its kernel: those with no profile event of their own.

    An Add/Sum counts only when the kernel took it as an extra input (the NCHWc "Sum" fusion).
    """
    if event["op"] == OP_TYPE:
        return ""
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    fused = []
    tensor = conv.output[0] if conv.output else ""
    for _ in range(3):
        users = consumers.get(tensor, [])
        if len(users) != 1 or users[0].op_type not in FUSABLE or not users[0].output:
            break
        user = users[0]
        if user.name in profile or user.output[0] in profile or not user.name:
            break
        if user.op_type in ("Add", "Sum") and len(event["inputs"]) <= 3:
            break
        fused.append(user.op_type)
        tensor = user.output[0]
    return "+".join(fused)


def match_profile(model: onnx.ModelProto, profile: Dict[str, dict]) -> Tuple[Dict[int, dict], Dict[str, float]]:
    """Match profiled nodes to the conv layers of `model` (index in `_conv_nodes` order).

    Returns ({conv index: {"name", "ms", "op", "fused"}}, {op type: ms} of everything else).
    """
    convs = _conv_nodes(model)
    shapes = _weight_shapes(model)
    keys = [_name_keys(model, c) for c in convs]
    candidates = []
    for pname, p in profile.items():
        if p["op"] not in ("Conv", OP_TYPE, "FusedConv", "NchwcConv"):
            continue
        pshape = p["inputs"][1] if len(p["inputs"]) > 1 else None
        for ci, c in enumerate(convs):
            if p["op"] == OP_TYPE and (c.op_type != OP_TYPE):
                continue
            if p["op"] != OP_TYPE and c.op_type == OP_TYPE:
                continue
            wshape = shapes.get(c.input[1]) if len(c.input) > 1 else None
            if pshape is not None and wshape is not None and list(pshape) != list(wshape):
                continue
            hit = keys[ci].get(pname)
            if hit is None and pname.endswith("_nchwc"):
                hit = keys[ci].get(pname[:-len("_nchwc")])
            if hit is not None:
                candidates.append((hit[0], ci, pname, _fused_ops(model, c, p, profile)))
    matched: Dict[int, dict] = {}
    used = set()
    for rank, ci, pname, fused in sorted(candidates, key=lambda t: (t[0], t[1])):
        if ci in matched or pname in used:
            continue
        matched[ci] = {"name": pname, "ms": profile[pname]["ms"], "op": profile[pname]["op"], "fused": fused}
        used.add(pname)
    other: Dict[str, float] = {}
    for pname, p in profile.items():
        if pname not in used:
            op = p["op"]
            if op in ("Conv", "FusedConv", "NchwcConv") or op == OP_TYPE:
                op = f"{op} (unmatched)"
            other[op] = other.get(op, 0.0) + p["ms"]
    return matched, other


def profile_pair(original: onnx.ModelProto, rewritten: onnx.ModelProto, feed: dict, threads: int,
                 runs: int, warmup: int = 2) -> dict:
    """Per-layer kernel times of both models from onnxruntime's profiler (separate sessions)."""
    with tempfile.TemporaryDirectory(prefix="haste-bench-") as tmp:
        sessions = [_sessions(m, threads, os.path.join(tmp, tag))
                    for tag, m in (("original", original), ("rewritten", rewritten))]
        for _ in range(warmup):
            for s in sessions:
                s.run(None, feed)
        for _ in range(runs):
            for s in sessions:
                s.run(None, feed)
        files = [s.end_profiling() for s in sessions]
        parsed = [parse_profile(f, runs) for f in files]
    return {"original": parsed[0], "rewritten": parsed[1]}


def haste_fused(node: onnx.NodeProto) -> str:
    """What a HasteConv absorbed (rewrite/fuse_activation.py), written like onnxruntime's fusions: "Add+Relu"."""
    parts = ["Add"] if len(node.input) > 4 and node.input[4] else []
    for a in node.attribute:
        if a.name == "activation" and a.s:
            parts.append(a.s.decode())
    return "+".join(parts)


def layer_table(original: onnx.ModelProto, rewritten: onnx.ModelProto, prof: dict, macs: dict) -> dict:
    """Per conv layer: original Conv time vs rewritten (HasteConv or kept Conv) time, and the other ops."""
    oconvs, rconvs = _conv_nodes(original), _conv_nodes(rewritten)
    if len(oconvs) != len(rconvs):  # pragma: no cover - the rewrite replaces nodes in place
        raise RuntimeError(f"{len(oconvs)} conv nodes in the original but {len(rconvs)} in the rewrite")
    om, oother = match_profile(original, prof["original"]["nodes"])
    rm, rother = match_profile(rewritten, prof["rewritten"]["nodes"])
    counters = {r["output"]: r for r in macs["layers"]}
    rows = []
    # Pair layers by node name (the rewrite keeps them; fusing a residual Add can move a HasteConv after the
    # shortcut Conv it now reads), by position for unnamed nodes.
    by_name = {r.name: j for j, r in enumerate(rconvs) if r.name}
    for i, o in enumerate(oconvs):
        j = by_name.get(o.name, i) if o.name else i
        r = rconvs[j]
        a, b = om.get(i), rm.get(j)
        c = counters.get(r.output[0]) if r.op_type == OP_TYPE else None
        rows.append({
            "node": r.name or o.name or r.output[0], "replaced": r.op_type == OP_TYPE,
            "rewritten_op": r.op_type, "original_ms": a["ms"] if a else None, "rewritten_ms": b["ms"] if b else None,
            "speedup": a["ms"] / b["ms"] if a and b and b["ms"] > 0 else None,
            "original_fused": a["fused"] if a else None,
            "rewritten_fused": haste_fused(r) if r.op_type == OP_TYPE else (b["fused"] if b else None),
            "original_profile_node": a["name"] if a else None, "rewritten_profile_node": b["name"] if b else None,
            "mac_cut": c["mac_reduction"] if c else None,
            "mac_cut_with_overheads": (1 - (c["haste_macs"] + c["overhead_ops"]) / c["dense_macs"]
                                       if c and c["dense_macs"] else None),
            "channel_ratio": c["channel_ratio"] if c else None,
        })

    def side(matched, other, parsed):
        conv = sum(m["ms"] for m in matched.values())
        total = sum(n["ms"] for n in parsed["nodes"].values())
        return {"kernel_ms": total, "conv_ms": conv, "other_ms": total - conv,
                "other_by_op": dict(sorted(other.items(), key=lambda kv: -kv[1])), "run_ms": parsed["run_ms"],
                "runs": parsed["runs"], "matched_layers": len(matched), "conv_share": conv / total if total else None}

    orig_side, rew_side = side(om, oother, prof["original"]), side(rm, rother, prof["rewritten"])
    replaced = [x for x in rows if x["replaced"]]
    ro = sum(x["original_ms"] or 0 for x in replaced)
    rr = sum(x["rewritten_ms"] or 0 for x in replaced)
    return {"layers": rows, "original": orig_side, "rewritten": rew_side,
            "replaced_original_ms": ro, "replaced_rewritten_ms": rr,
            "replaced_speedup": ro / rr if rr else None}


# ---- memory --------------------------------------------------------------------------------------

_MEMORY_CHILD = r"""
import json, resource, sys
import numpy as np
import onnxruntime as ort


def status(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


model, batch, lib, threads, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
x = np.load(batch)
rss_before = status("VmRSS")
hwm_before = status("VmHWM")  # the peak so far: interpreter, numpy, onnxruntime imports
try:  # reset the high-water mark (Linux >= 4.0), so VmHWM below is the peak since the session was made
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
opts = ort.SessionOptions()
opts.register_custom_ops_library(lib)
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
feed = {s.get_inputs()[0].name: x}
for _ in range(runs):
    s.run(None, feed)
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_before_kb": rss_before,
                  "hwm_before_kb": hwm_before, "hwm_kb": status("VmHWM"), "reset": reset}))
"""


def peak_memory(model: onnx.ModelProto, x: np.ndarray, threads: int, runs: int = 3) -> dict:
    """Peak resident memory (MB) of a child process that loads `model` and runs batch `x` `runs` times.

    `peak_mb`: the child's peak resident size, whole process (Python, numpy
    and onnxruntime included). On Linux it is read from /proc/self/status
    (VmHWM), not from `ru_maxrss`: a child started by fork/vfork + exec
    inherits the parent's high-water mark in `ru_maxrss` (RUSAGE_CHILDREN
    too), which would hide the model. `session_mb`: on Linux, the peak since
    just before the session was made (VmHWM reset through
    /proc/self/clear_refs) minus the resident size then: what the session
    and its runs added; None where that cannot be read.
    """
    from .runtime import get_library_path

    with tempfile.TemporaryDirectory(prefix="haste-bench-mem-") as tmp:
        path, data = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "batch.npy")
        large = model.ByteSize() > 1_800_000_000
        onnx.save_model(model, path, save_as_external_data=large, location="model.onnx.data" if large else None)
        np.save(data, x)
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, path, data, get_library_path(), str(threads),
                               str(runs)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory child failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["hwm_kb"] is not None:
        peak_kb = max(out["hwm_kb"], out["hwm_before_kb"] or 0) if out["reset"] else out["hwm_kb"]
        source = "VmHWM"
    else:  # not Linux: ru_maxrss (bytes on macOS, KiB elsewhere)
        peak_kb = out["maxrss_kb"] / (1024 if sys.platform == "darwin" else 1)
        source = "ru_maxrss"
    session = None
    if out["reset"] and out["hwm_kb"] is not None and out["rss_before_kb"] is not None:
        session = (out["hwm_kb"] - out["rss_before_kb"]) / 1024
    return {"peak_mb": peak_kb / 1024, "session_mb": session, "runs": runs, "source": source}


# ---- the benchmark -------------------------------------------------------------------------------

def versions() -> dict:
    from .evaluate import versions as eval_versions

    return {**eval_versions(), "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count()}


def prepare_pair(model: onnx.ModelProto, options: BenchOptions):
    """(original, rewritten, rewrite report or None, prebuilt) as the benchmark compares them."""
    from .evaluate import count_haste
    from .rewrite import rewrite_model, strip_model

    if count_haste(model) != (0, 0):
        original, _ = strip_model(model)
        return original, model, None, True
    rewritten, report = rewrite_model(model, options.hashing, options.policy)
    return model, rewritten, report, False


def bench(model: onnx.ModelProto, images: np.ndarray, options: Optional[BenchOptions] = None,
          progress=None) -> dict:
    """Benchmark `model` against its rewrite on the first `options.batch` of `images` (float32 NCHW)."""
    from .evaluate import input_info

    options = options or BenchOptions()
    options.validate()
    say = progress or (lambda text: None)
    original, rewritten, report, prebuilt = prepare_pair(model, options)
    x, repeated = batch_of(images, options.batch)
    name, dims = input_info(original)
    if dims and dims[0] is not None and dims[0] != options.batch:
        raise ValueError(f"the model's input {name!r} has a fixed batch of {dims[0]}; use --batch {dims[0]}")
    feed = {name: x}

    say("measuring the conv MACs of the rewritten model on the batch ...")
    macs = measured_macs(original, rewritten, x, options.threads)
    t = macs["totals"]
    r = t[IDEAL_BASIS]
    ideal = 1 / (1 - r) if r is not None and r < 1 else None

    clock = time.process_time if options.cpu_time else time.perf_counter
    say(f"timing: {options.warmup} warm-up + {options.repeats} alternating runs of each model ...")
    s_orig, s_rew = _sessions(original, options.threads), _sessions(rewritten, options.threads)
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
        layers = layer_table(original, rewritten, prof, macs)
    share = layers["original"]["conv_share"] if layers else None
    amdahl = 1 / ((1 - share) + share * (1 - r)) if share is not None and r is not None else None

    memory = None
    if options.memory:
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
        "settings": options.to_json(prebuilt),
        "batch": {"images": int(len(x)), "repeated": repeated, "shape": list(x.shape)},
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
