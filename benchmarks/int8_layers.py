"""Issue 22 item 3: could an int8 HasteConv beat onnxruntime's int8 Conv? Per layer, measured.

For each layer the default plan replaces (3x3, stride 1; the shared models at 32x32 and ResNet-18 at
224x224: every such layer; the real models: those whose output map has at least `--min-map` pixels per
side), the layer is cut out of the model (`haste_onnx.probe.layer_time.LayerPiece`: X [, Z] -> Y, with
what onnxruntime fuses into its Conv and what the rewriter fuses into HasteConv) and timed as

  conv    the float Conv piece;
  qdq     onnxruntime.quantization.quantize_static of that piece (QDQ, per-channel, QUInt8 activations,
          QInt8 weights, MinMax calibration on the layer's real inputs: the float model run on
          `--calib` images), run with all graph optimisations; `fused` says whether onnxruntime fused it
          into QLinearConv;
  int8    the int8 work alone (the fair lower bound of int8, since in a fully quantized model the Q/DQ
          between layers are shared): the QDQ piece optimised by onnxruntime (QLinearConv [+ QLinearAdd]),
          its input QuantizeLinear and output DequantizeLinear removed, fed uint8 tensors. Timed whole
          (`int8_piece`: onnxruntime adds uint8 NCHW<->NHWC Transposes at the piece's borders) and without
          them (`int8`, the number compared: the int8 piece's CPU time times the share of its non-Transpose
          nodes in onnxruntime's profiler's node times);
  haste   the float HasteConv piece of a one-layer rewrite at each `--L`, with its `stats` counters
          (MAC fraction haste_macs / dense_macs).

All sessions run alternating (the order rotates every round) after a warm-up, 1 intra-op thread, process
CPU time; medians and quartiles are reported.

The GEMM / non-GEMM split of the float HasteConv is measured with `perf record -e cpu-clock:u` attached to
this process while it runs the HasteConv piece alone (symbols of libhaste_onnx_ops.so: GemmSteps* are the
GEMM; the rest is hashing, grouping, merging, copying and writing, STAGES). Without `perf` the split and the
bound are left out.

The lower bound of any int8 HasteConv (`bound_ms`) is

  non-GEMM ms / factor  +  int8 ms x MAC fraction

- non-GEMM ms = haste ms x (1 - GEMM share of the samples);
- factor (`--factor`, default 4): u8 packs 4 values per lane of an f32, so no stage can gain more than 4x
  from narrower data; the summing stages widen to int16/int32 (<= 2x) and grouping is scalar (1x), so 4 is
  generous. `bound_stage_ms` uses per-stage factors instead (STAGE_FACTORS);
- int8 ms x MAC fraction: the merged GEMM at the efficiency of onnxruntime's packed VNNI QGEMM, which the
  per-tile merged filters (re-built per 4x4 tile, used for 16 pixels, never pre-packed) cannot reach.

Also per layer and L: `factor_needed` (how many times faster all non-GEMM stages must get to tie with
int8) and the design estimate `estimate_ms` (every stage at its own factor, STAGE_FACTORS, plus the
cheaper representation of the merged filters: int16 sums with the GEMM at half rate, or re-quantized to
s8 with one more pass; `lower_bound`). docs/int8_haste.md explains the design and the verdict.

argv:
  --model ID       resnet18_32, resnet34_32, resnet18_224, vgg16_tumor, yolov8n_640 (repeatable; default all)
  --models-dir DIR the shared models folder (default $HASTE_ONNX_MODELS or /work/shared/models)
  --L N            hyperplanes of the HasteConv side (repeatable; default 14, 8 and 6)
  --min-map N      real models (vgg16_tumor, yolov8n_640): only layers whose output is at least N x N (56)
  --layers PATTERN only sites containing PATTERN (repeatable)
  --max-layers N   at most N layers per model
  --calib N        calibration images (layer inputs) for quantize_static (default 8)
  --repeats N      timed rounds (default 15); --warmup N (default 3)
  --factor F       the integer-SIMD factor of the bound (default 4)
  --no-perf        skip the perf split
  --json PATH      write the rows (small: medians, quartiles, counters, shares); --markdown prints the tables
                   (per model sums, one row per layer with every L side by side; --full: one row per layer and
                   L with every term of the bound)
  --from-json PATH print the table of a stored --json result (bounds recomputed; nothing measured)
  --accuracy       no timing: relative RMS error against the float Conv piece of onnxruntime's int8 piece, the
                   float HasteConv and the int8 HasteConv reference (haste_onnx/op/reference_int8.py)

Examples (the tables of docs/int8_haste.md; about 12 and 8 minutes on 2 cores):
  PYTHONPATH=. python benchmarks/int8_layers.py --json benchmarks/results/int8_layers.json --markdown
  PYTHONPATH=. python benchmarks/int8_layers.py --accuracy --json benchmarks/results/int8_accuracy.json --markdown
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

MODELS = ("resnet18_32", "resnet34_32", "resnet18_224", "vgg16_tumor", "yolov8n_640")
REAL_MODELS = ("vgg16_tumor", "yolov8n_640")
DEFAULT_FACTOR = 4.0
# Largest gain integer SIMD could give each non-GEMM stage of the float kernel (u8 activations, s8 weights):
# moving u8 instead of f32 is at most 4x (patch copy, im2col); stages that add values must widen to
# int16/int32 (centring and hashing, merged inputs, merged filters: at most 2x); writing Y moves 4x fewer
# bytes but requantizes (int32 -> float, scale, round, zero point, saturate; Z dequantized): 2x; the rest
# (grouping, scheduling, onnxruntime) is scalar: 1x.
STAGE_FACTORS = {"gather": 4.0, "im2col": 4.0, "hashing": 2.0, "merge_inputs": 2.0, "merge_filters": 2.0,
                 "write": 2.0, "other": 1.0}
# VPDPWSSD (s16 x s16, 32 products per 512-bit instruction) against VPDPBUSD (u8 x s8, 64): the GEMM with
# exact int16 merged filters runs at half the rate of onnxruntime's u8 x s8 GEMM at best.
INT16_GEMM_COST = 2.0
STAGES = {  # symbol substrings of libhaste_onnx_ops.so -> stage (first match wins)
    "gemm": ("GemmSteps", "GroupGemm", "GemmBlocks"),
    "merge_filters": ("MergeFilters", "MergeShared", "MergeSteps"),
    "hashing": ("HashChannels", "HashSparse", "CodeChannels", "CentreTransposed", "HashAny", "MagnitudeBucket"),
    "gather": ("GatherPatch", "GatherPadded", "CopyFloats"),
    "merge_inputs": ("MergeInputs",),
    "im2col": ("Im2col",),
    "write": ("WriteRowsOfFour", "GemmAndWrite"),
}


# ---- the int8 pieces ------------------------------------------------------------------------------------

def quantize_piece(piece: onnx.ModelProto, calibration: Sequence[Dict[str, np.ndarray]]) -> onnx.ModelProto:
    """onnxruntime's static int8 quantization of a float piece: QDQ, per-channel, QUInt8 activations, QInt8
    weights, MinMax calibration on `calibration` (feeds of the piece)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    work = onnx.ModelProto()
    work.CopyFrom(piece)
    work.ir_version = min(work.ir_version, 10)  # the calibrator's onnxruntime reads IR <= 13 only
    feeds = list(calibration)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dest = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(work, str(src))
        quantize_static(str(src), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return onnx.load(str(dest))


def optimized(model: onnx.ModelProto, level: str = "extended") -> onnx.ModelProto:
    """The graph onnxruntime runs at that optimisation level (CPU; extended: QDQ fused, no layout change)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                     "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    opts.intra_op_num_threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def _const(model: onnx.ModelProto, name: str) -> Optional[np.ndarray]:
    from onnx import numpy_helper

    return next((numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name), None)


@dataclass
class Int8Core:
    """The int8 work of a QDQ piece alone: uint8 in, uint8 out (its quantization parameters kept to feed it)."""

    model: onnx.ModelProto
    inputs: Dict[str, tuple]  # float input name -> (core input name, scale, zero point)
    ops: List[str] = field(default_factory=list)

    def feed(self, floats: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        out = {}
        for name, (core_name, scale, zero) in self.inputs.items():
            q = np.rint(floats[name] / np.float32(scale)) + int(zero)
            out[core_name] = np.clip(q, 0, 255).astype(np.uint8)
        return out


def int8_core(qdq_optimized: onnx.ModelProto) -> Optional[Int8Core]:
    """The optimised QDQ piece without the QuantizeLinear of its inputs and the DequantizeLinear of its
    outputs; None when an input feeds anything but one QuantizeLinear or an output is not dequantized."""
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(qdq_optimized)
    g = m.graph
    inputs: Dict[str, tuple] = {}
    new_inputs, drop = [], []
    init_names = {t.name for t in g.initializer}
    for value in g.input:
        if value.name in init_names:
            continue
        users = [n for n in g.node if value.name in n.input]
        if len(users) != 1 or users[0].op_type != "QuantizeLinear" or users[0].input[0] != value.name:
            return None
        q = users[0]
        scale, zero = _const(m, q.input[1]), _const(m, q.input[2]) if len(q.input) > 2 else np.uint8(0)
        if scale is None or zero is None or np.asarray(scale).size != 1 or np.asarray(zero).dtype != np.uint8:
            return None
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in value.type.tensor_type.shape.dim]
        new_inputs.append(helper.make_tensor_value_info(q.output[0], TensorProto.UINT8, dims))
        inputs[value.name] = (q.output[0], float(np.asarray(scale)), int(np.asarray(zero)))
        drop.append(q)
    new_outputs = []
    for value in g.output:
        producer = next((n for n in g.node if value.name in n.output), None)
        if producer is None or producer.op_type != "DequantizeLinear":
            return None
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in value.type.tensor_type.shape.dim]
        new_outputs.append(helper.make_tensor_value_info(producer.input[0], TensorProto.UINT8, dims))
        drop.append(producer)
    for node in drop:
        g.node.remove(node)
    del g.input[:]
    g.input.extend(new_inputs)
    del g.output[:]
    g.output.extend(new_outputs)
    del g.value_info[:]
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    return Int8Core(m, inputs, [n.op_type for n in g.node])


def profiled_node_ms(model: onnx.ModelProto, feed: Dict[str, np.ndarray], runs: int,
                     skip=("Transpose",)) -> Optional[dict]:
    """Median and quartiles over `runs` of the summed kernel times (onnxruntime's profiler, 1 thread, all
    optimisations) of the nodes whose op is not in `skip`; and those ops."""
    import onnxruntime as ort

    from haste_onnx.runtime import session_options

    with tempfile.TemporaryDirectory() as tmp:
        opts = session_options(threads=1, optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "prof")
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):  # the first three are the warm-up
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    runs_ev = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    if not runs_ev:
        return None
    runs_ev = runs_ev[-runs:]
    sums, alls, ops = [], [], set()
    for r in runs_ev:
        t0, t1 = r["ts"], r["ts"] + r["dur"]
        inside = [e for e in nodes if t0 <= e["ts"] <= t1]
        keep = [e for e in inside if e.get("args", {}).get("op_name") not in skip]
        ops.update(e.get("args", {}).get("op_name") for e in keep)
        sums.append(sum(e["dur"] for e in keep) / 1e3)
        alls.append(sum(e["dur"] for e in inside) / 1e3)
    q1, med, q3 = np.percentile(sums, [25, 50, 75])
    share = float(np.median(np.asarray(sums) / np.maximum(np.asarray(alls), 1e-12)))
    return {"ms": float(med), "p25": float(q1), "p75": float(q3), "all_ms": float(np.median(alls)),
            "share": share, "ops": sorted(o for o in ops if o)}


# ---- the HasteConv counters and the perf split -----------------------------------------------------------

def haste_counters(haste_piece: onnx.ModelProto, feed: Dict[str, np.ndarray]):
    """The `stats` counters of the piece's HasteConv on `feed` (hyperplanes included)."""
    from haste_onnx.measure.instrument import add_stats_outputs
    from haste_onnx.measure.sessions import bench_session
    from haste_onnx.op.stats import Counters

    measured, pairs = add_stats_outputs(haste_piece)
    sess = bench_session(measured, 1)
    values = sess.run([pairs[0][1]], feed)[0]
    return Counters.from_array(np.asarray(values, np.int64).reshape(-1))


def stage_of(symbol: str) -> str:
    for stage, keys in STAGES.items():
        if any(k in symbol for k in keys):
            return stage
    return "other"


def parse_perf_report(text: str) -> Dict[str, float]:
    """`perf report --stdio --sort dso,sym` lines -> share per stage of the samples outside Python (0..1)."""
    shares: Dict[str, float] = {}
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        if "python" in dso.lower():
            continue
        total += pct
        key = stage_of(sym) if "haste_onnx_ops" in dso else ("other" if "onnxruntime" in dso else "other")
        shares[key] = shares.get(key, 0.0) + pct
    return {k: v / total for k, v in shares.items()} if total > 0 else {}


def perf_available() -> bool:
    if shutil.which("perf") is None:
        return False
    try:
        r = subprocess.run(["perf", "record", "-e", "cpu-clock:u", "-o", "/dev/null", "--", "true"],
                           capture_output=True, timeout=30)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def perf_split(session, feed: Dict[str, np.ndarray], seconds: float = 1.5, max_runs: int = 400) -> dict:
    """Share of each stage in the samples of `session` running `feed` (perf attached to this process)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "perf.data")
        proc = subprocess.Popen(["perf", "record", "-e", "cpu-clock:u", "-F", "9999", "-p", str(os.getpid()),
                                 "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attach (no samples while this process sleeps)
        t0, runs = time.perf_counter(), 0
        while runs < max_runs and (runs < 5 or time.perf_counter() - t0 < seconds):
            session.run(None, feed)
            runs += 1
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "dso,sym", "--no-children",
                                 "--percent-limit", "0"], capture_output=True, text=True, timeout=300).stdout
    shares = parse_perf_report(report)
    return {"runs": runs, "shares": {k: round(v, 4) for k, v in sorted(shares.items())}}


def lower_bound(haste_ms: float, shares: Dict[str, float], int8_ms: float, mac_fraction: float,
                factor: float = DEFAULT_FACTOR) -> dict:
    """The least time an int8 HasteConv of this layer could take (`bound_ms`, see the module docstring), and
    the design estimate (`estimate_ms`): every non-GEMM stage at its own factor (STAGE_FACTORS) plus the
    cheaper of the two representations of the merged filters,
    - int16 sums of the s8 slices (exact for merge="mean"): GEMM at INT16_GEMM_COST x the u8 x s8 rate;
    - re-quantized to s8 per tile and output channel: GEMM at the u8 x s8 rate, plus a second pass over the
      merged filters (max, scale, round) costing as much as summing them."""
    gemm = shares.get("gemm", 0.0)
    non_gemm_ms = haste_ms * (1.0 - gemm)
    gemm8_ms = int8_ms * mac_fraction
    per_stage = sum(haste_ms * share / STAGE_FACTORS.get(stage, 1.0)
                    for stage, share in shares.items() if stage != "gemm")
    requant_ms = haste_ms * shares.get("merge_filters", 0.0) / STAGE_FACTORS["merge_filters"]
    int16 = per_stage + INT16_GEMM_COST * gemm8_ms
    requant = per_stage + requant_ms + gemm8_ms
    bound = non_gemm_ms / factor + gemm8_ms
    # how many times faster the non-GEMM stages must get for a tie with int8 (inf: never, the GEMM alone loses)
    need = non_gemm_ms / (int8_ms - gemm8_ms) if int8_ms > gemm8_ms else float("inf")
    need16 = (non_gemm_ms / (int8_ms - INT16_GEMM_COST * gemm8_ms) if int8_ms > INT16_GEMM_COST * gemm8_ms
              else float("inf"))
    return {"factor_needed": need, "factor_needed_int16": need16,
            "gemm_share": gemm, "non_gemm_ms": non_gemm_ms, "gemm8_ms": gemm8_ms, "factor": factor,
            "bound_ms": bound, "bound_over_int8": bound / int8_ms, "bound_stage_ms": per_stage + gemm8_ms,
            "estimate_int16_ms": int16, "estimate_requant_ms": requant, "estimate_ms": min(int16, requant),
            "estimate_over_int8": min(int16, requant) / int8_ms}


# ---- timing ----------------------------------------------------------------------------------------------

def time_rotating(sessions: Dict[str, tuple], repeats: int, warmup: int, clock=time.process_time) -> Dict[str, list]:
    """ms per run of each (session, feed), one run of each per round, the order rotating every round."""
    names = list(sessions)
    for _ in range(warmup):
        for name in names:
            sessions[name][0].run(None, sessions[name][1])
    out = {name: [] for name in names}
    for i in range(repeats):
        order = names[i % len(names):] + names[:i % len(names)]
        if (i // len(names)) % 2:
            order = order[::-1]
        for name in order:
            sess, feed = sessions[name]
            t0 = clock()
            sess.run(None, feed)
            out[name].append(1e3 * (clock() - t0))
    return out


def quartiles(samples: Sequence[float]) -> dict:
    q1, med, q3 = np.percentile(np.asarray(samples, np.float64), [25, 50, 75])
    return {"ms": float(med), "p25": float(q1), "p75": float(q3)}


def ratio_quartiles(a: Sequence[float], b: Sequence[float]) -> dict:
    r = np.asarray(a, np.float64) / np.maximum(np.asarray(b, np.float64), 1e-12)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return {"median": float(med), "p25": float(q1), "p75": float(q3)}


# ---- one layer ---------------------------------------------------------------------------------------------

@dataclass
class Options:
    counts: Sequence[int] = (14, 8, 6)
    calib: int = 8
    repeats: int = 15
    warmup: int = 3
    factor: float = DEFAULT_FACTOR
    perf: bool = True


def measure_layer(original: onnx.ModelProto, plan, layer, images: np.ndarray, options: Options,
                  say=print) -> dict:
    """Every number of one row of the table (see the module docstring)."""
    from haste_onnx.measure.sessions import bench_session
    from haste_onnx.op.hyperplanes import draw_hyperplanes
    from haste_onnx.probe.layer_time import LayerPiece, TimingContext
    from haste_onnx.rewrite import rewrite_model
    from haste_onnx.rewrite.analysis import is_haste

    context = TimingContext(batch=1, threads=1, repeats=options.repeats, warmup=options.warmup)
    one = plan.only(layer.site, replace(layer.settings, hyperplanes=options.counts[0]))
    rewritten, _ = rewrite_model(original, one)
    node = next(n for n in rewritten.graph.node if is_haste(n))
    piece = LayerPiece(original, rewritten, node, images, context)
    x_name = piece.boundary[0]
    x = piece.feed[x_name]
    y_name = piece.conv_piece.graph.output[0].name
    row = {"site": layer.site, "in_channels": layer.shape.in_channels, "out_channels": layer.shape.out_channels,
           "kernel": list(layer.shape.kernel or ()), "input": list(x.shape),
           "residual": len(piece.boundary) > 1, "fused_in_conv_piece": [n.op_type for n in piece.conv_piece.graph.node]}

    # calibration: the layer's real inputs on the images after the timed one
    calib = [piece._capture(original, images[i:i + 1], piece.boundary) for i in range(1, 1 + options.calib)
             if i < len(images)] or [piece.feed]
    qdq = quantize_piece(piece.conv_piece, calib)
    ext = optimized(qdq, "extended")
    row["int8_ops"] = [n.op_type for n in ext.graph.node]
    row["fused"] = "QLinearConv" in row["int8_ops"]
    core = int8_core(ext)

    sessions = {"conv": (piece._conv, piece.feed), "qdq": (bench_session(qdq, 1), piece.feed)}
    if core is not None:
        sessions["int8_piece"] = (bench_session(core.model, 1), core.feed(piece.feed))
    planes = {}
    for count in options.counts:
        planes[count] = draw_hyperplanes(count, piece.patch, layer.settings.sparsity,
                                         next(a.i for a in node.attribute if a.name == "seed"))
        sessions[f"haste_L{count}"] = (piece._haste, {**piece.feed, piece.planes_name: planes[count]})

    # agreement of the int8 piece with the float one (relative to the output's spread)
    y_conv = piece._conv.run(None, piece.feed)[0]
    y_q = sessions["qdq"][0].run(None, piece.feed)[0]
    row["qdq_error"] = float(np.abs(y_q - y_conv).max() / max(float(np.abs(y_conv).max()), 1e-12))

    times = time_rotating(sessions, options.repeats, options.warmup)
    row["ms"] = {name: quartiles(v) for name, v in times.items()}
    if core is not None:
        prof = profiled_node_ms(core.model, core.feed(piece.feed), options.repeats)
        row["int8_nodes"] = prof
    # the int8 work alone: the int8 piece's CPU time times the share of its non-Transpose nodes in the
    # profiler's node times (the profiler's wall clock gives the share; the CPU clock, alternating, the time)
    if "int8_piece" in row["ms"]:
        share = (row.get("int8_nodes") or {}).get("share", 1.0)
        int8_ms = row["ms"]["int8_piece"]["ms"] * share
        row["int8_quartiles"] = {k: row["ms"]["int8_piece"][k] * share for k in ("ms", "p25", "p75")}
    else:
        int8_ms = row["ms"]["qdq"]["ms"]
    row["int8_ms"] = int8_ms
    row["ratios"] = {"conv_over_qdq": ratio_quartiles(times["conv"], times["qdq"])}
    if "int8_piece" in times:
        row["ratios"]["conv_over_int8_piece"] = ratio_quartiles(times["conv"], times["int8_piece"])
    row["haste"] = {}
    for count in options.counts:
        key = f"haste_L{count}"
        feed = sessions[key][1]
        c = haste_counters(piece.haste_piece, feed)
        entry = {"L": count, "ms": row["ms"][key], "mac_fraction": c.haste_macs / c.dense_macs,
                 "overhead_ops_fraction": c.overhead_ops / c.dense_macs,
                 "conv_over_haste": ratio_quartiles(times["conv"], times[key])}
        if "int8_piece" in times:
            entry["haste_over_int8_piece"] = ratio_quartiles(times[key], times["int8_piece"])
        if options.perf:
            split = perf_split(piece._haste, feed)
            entry["perf"] = split
            entry["bound"] = lower_bound(row["ms"][key]["ms"], split["shares"], int8_ms, entry["mac_fraction"],
                                         options.factor)
        row["haste"][str(count)] = entry
    row["y_shape"] = list(y_conv.shape)
    row["y"] = y_name
    return row


# ---- accuracy: the int8 HasteConv reference on the layer's real input --------------------------------------

def rel_rms(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y.astype(np.float64) - ref) ** 2)) / max(np.sqrt(np.mean(ref ** 2)), 1e-30))


def int8_operands(ext: onnx.ModelProto) -> dict:
    """The QLinearConv's int8 weights, per-channel scales and int32 bias, and the piece's output
    quantization (its final DequantizeLinear: after a fused QLinearAdd, that one's)."""
    conv = next(n for n in ext.graph.node if n.op_type == "QLinearConv")
    dq = next(n for n in ext.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == ext.graph.output[0].name)
    return {"w": _const(ext, conv.input[3]), "w_scale": np.asarray(_const(ext, conv.input[4]), np.float64).reshape(-1),
            "bias": _const(ext, conv.input[8]) if len(conv.input) > 8 and conv.input[8] else None,
            "y_scale": float(_const(ext, dq.input[1])), "y_zero": int(_const(ext, dq.input[2]))}


def accuracy_layer(original: onnx.ModelProto, plan, layer, images: np.ndarray, options: Options) -> dict:
    """Relative RMS error against the float Conv piece of: onnxruntime's int8 piece, the float HasteConv, and
    the int8 HasteConv reference (the plan's merge with re-quantized filters; with merge="mean" also int16
    sums), each at every L, on the timed image."""
    from haste_onnx.op.geometry import ConvAttrs
    from haste_onnx.op.hyperplanes import draw_hyperplanes
    from haste_onnx.op.reference import activation_clamp
    from haste_onnx.op.reference_int8 import haste_conv_int8
    from haste_onnx.probe.layer_time import LayerPiece, TimingContext
    from haste_onnx.rewrite import rewrite_model
    from haste_onnx.rewrite.analysis import is_haste

    one = plan.only(layer.site, replace(layer.settings, hyperplanes=options.counts[0]))
    rewritten, _ = rewrite_model(original, one)
    node = next(n for n in rewritten.graph.node if is_haste(n))
    piece = LayerPiece(original, rewritten, node, images, TimingContext(batch=1, threads=1))
    calib = [piece._capture(original, images[i:i + 1], piece.boundary) for i in range(1, 1 + options.calib)
             if i < len(images)] or [piece.feed]
    qdq = quantize_piece(piece.conv_piece, calib)
    ext = optimized(qdq, "extended")
    core = int8_core(ext)
    y = piece._conv.run(None, piece.feed)[0].astype(np.float64)
    row = {"site": layer.site, "y_shape": list(y.shape), "in_channels": layer.shape.in_channels,
           "out_channels": layer.shape.out_channels, "merge": layer.settings.merge}
    from haste_onnx.measure.sessions import bench_session

    row["ort_int8"] = rel_rms(bench_session(qdq, 1).run(None, piece.feed)[0], y)
    if core is None or "QLinearConv" not in core.ops:
        return row
    ops = int8_operands(ext)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    conv = ConvAttrs.from_dict({k: attrs[k] for k in ("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                                      "strides") if k in attrs}, ops["w"].shape)
    clamp = activation_clamp(attrs.get("activation"), attrs.get("activation_params"))
    feed8 = core.feed(piece.feed)
    x_name = piece.boundary[0]
    xq_name, xs, xz = core.inputs[x_name]
    zkw = {}
    if len(piece.boundary) > 1:
        zq_name, zs, zz = core.inputs[piece.boundary[1]]
        zkw = {"z": feed8[zq_name], "z_scale": zs, "z_zero": zz}
    tile = tuple(attrs.get("tile", (4, 4)))
    row["L"] = {}
    for count in options.counts:
        planes = draw_hyperplanes(count, piece.patch, layer.settings.sparsity, attrs["seed"])
        entry = {"float_haste": rel_rms(piece._haste.run(None, {**piece.feed, piece.planes_name: planes})[0], y)}
        variants = [(layer.settings.merge, "requant")] + ([("mean", "int16")] if layer.settings.merge == "mean" else [])
        for merge, rep in variants:
            q = haste_conv_int8(feed8[xq_name], xs, xz, ops["w"], ops["w_scale"], ops["bias"], planes,
                                ops["y_scale"], ops["y_zero"], conv, tile, merge=merge, representation=rep,
                                centering=bool(attrs.get("centering", 1)), clamp=clamp, **zkw)
            entry[f"int8_haste_{merge}_{rep}"] = rel_rms((q.astype(np.float64) - ops["y_zero"]) * ops["y_scale"], y)
        row["L"][str(count)] = entry
    return row


def accuracy_markdown(results: List[dict]) -> str:
    """Per model and L the medians (and maxima) of the relative RMS errors, then one row per layer and L."""
    summary = ["| model | layers | L | ORT int8: median | float HasteConv: median (max) | "
               "int8 HasteConv: median (max) | int8 / float HasteConv error: median |", "|" + "---|" * 7]
    for res in results:
        rows = [r for r in res.get("layers", []) if r.get("L")]
        for count in sorted({c for r in rows for c in r["L"]}, key=int, reverse=True):
            rs = [r for r in rows if count in r["L"]]
            key = lambda e: next(v for k, v in e.items() if k.startswith("int8_haste"))  # noqa: E731
            o = np.array([r["ort_int8"] for r in rs])
            f = np.array([r["L"][count]["float_haste"] for r in rs])
            q = np.array([key(r["L"][count]) for r in rs])
            summary.append(f"| {res['id']} | {len(rs)} | {count} | {np.median(o):.3f} | {np.median(f):.3f} "
                           f"({f.max():.3f}) | {np.median(q):.3f} ({q.max():.3f}) | {np.median(q / f):.2f} |")
    lines = ["| model | layer | map | C_in->C_out | ORT int8 | L | float HasteConv | int8 HasteConv (reference) |",
             "|" + "---|" * 8]
    for res in results:
        for row in res.get("layers", []):
            for count, e in row.get("L", {}).items():
                int8 = ", ".join(f"{v:.4f} ({k.replace('int8_haste_', '')})" for k, v in e.items()
                                 if k.startswith("int8_haste"))
                lines.append(f"| {res['id']} | {short_site(row['site'])} | {'x'.join(map(str, row['y_shape'][2:]))} | "
                             f"{row['in_channels']}->{row['out_channels']} | {row['ort_int8']:.4f} | {count} | "
                             f"{e['float_haste']:.4f} | {int8} |")
    return "\n".join(summary) + "\n\n" + "\n".join(lines)


# ---- models and inputs -----------------------------------------------------------------------------------

def load_model(model_id: str, models_dir: str):
    """(model, images for the layer inputs: the first is timed, the next ones calibrate) of a suite row."""
    import suite_prep as prep

    rows = {r["id"]: r for r in json.loads((HERE / "suite.json").read_text())["rows"]}
    row = rows[model_id]
    pre = prep.Preprocess.from_json(row["input"])
    src = prep.source_file(row["model"], models_dir)
    model = onnx.load(str(src))
    if "input_size" in row["model"]:
        prep.fix_hw(model, row["model"]["input_size"], row["model"]["input_size"], pre.layout)
    if "fix_hw" in row["model"]:
        prep.fix_hw(model, *row["model"]["fix_hw"], pre.layout)
    if row["images"] == "fashion-mnist":
        from haste_onnx.data.preprocess import preprocess_fashion_mnist

        raw, _ = prep.fashion_mnist("test", 16)
        images = preprocess_fashion_mnist(raw, pre.size)
    else:
        photos = prep.skimage_photos(json.loads((HERE / "suite.json").read_text())["settings"]["photos"])
        images = pre.prepare_pil([im for _, im in photos])
    return model, np.ascontiguousarray(images, np.float32), row["title"]


def output_sides(model: onnx.ModelProto) -> Dict[str, tuple]:
    """Conv node name -> (H, W) of its output, from shape inference (empty where unknown)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - only a filter; unknown shapes are measured
        return {}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    out = {}
    for n in inferred.graph.node:
        dims = shapes.get(n.output[0]) if n.op_type == "Conv" else None
        if dims and len(dims) == 4 and min(dims[2:]) > 0:
            out[n.name] = tuple(dims[2:])
    return out


def run_model(model_id: str, args, options: Options, say=print) -> dict:
    from haste_onnx.plan.build import plan_model

    try:
        model, images, title = load_model(model_id, args.models_dir)
    except Exception as err:  # a package or data set that is not here: the row says why
        say(f"{model_id}: skipped ({str(err).splitlines()[0]})")
        return {"id": model_id, "skipped": str(err).splitlines()[0]}
    plan = plan_model(model)
    layers = [layer for layer in plan.replaced()
              if not args.layers or any(p in layer.site for p in args.layers)]
    sides = output_sides(model) if model_id in REAL_MODELS else {}
    rows = []
    for layer in layers:
        if args.max_layers and len(rows) >= args.max_layers:
            break
        side = sides.get(layer.site)
        if side is not None and min(side) < args.min_map:
            continue
        t0 = time.time()
        if args.accuracy:
            rows.append(accuracy_layer(model, plan, layer, images, options))
            say(f"{model_id} {layer.site} {json.dumps({k: rows[-1][k] for k in ('ort_int8', 'L') if k in rows[-1]})} "
                f"({time.time() - t0:.0f} s)")
            continue
        rows.append(measure_layer(model, plan, layer, images, options, say))
        say(f"{model_id} {one_line(rows[-1])} ({time.time() - t0:.0f} s)")
    return {"id": model_id, "title": title, "layers": rows}


def one_line(row: dict) -> str:
    parts = [f"{row['site']} {row['in_channels']}->{row['out_channels']} map {'x'.join(map(str, row['y_shape'][2:]))}",
             f"conv {row['ms']['conv']['ms']:.3f}", f"qdq {row['ms']['qdq']['ms']:.3f}", f"int8 {row['int8_ms']:.3f}"]
    for h in row["haste"].values():
        b = h.get("bound", {})
        parts.append(f"L{h['L']} {h['ms']['ms']:.3f} mac {h['mac_fraction']:.2f} gemm {b.get('gemm_share', 0):.2f} "
                     f"bound {b.get('bound_ms', float('nan')):.3f} ({b.get('bound_over_int8', float('nan')):.2f}x int8)")
    return ", ".join(parts)


def haste_ms(row: dict, h: dict) -> dict:
    return h.get("ms") or row["ms"][f"haste_L{h['L']}"]


def int8_quartiles(row: dict) -> dict:
    if "int8_quartiles" in row:
        return row["int8_quartiles"]
    if "int8_piece" in row["ms"] and "int8_share" in row:
        return {k: row["ms"]["int8_piece"][k] * row["int8_share"] for k in ("ms", "p25", "p75")}
    return {"ms": row["int8_ms"], "p25": float("nan"), "p75": float("nan")}


def bounds(row: dict, h: dict, factor: float = DEFAULT_FACTOR) -> Optional[dict]:
    """`lower_bound` of one HasteConv entry, recomputed from its stored measurements (None without perf)."""
    shares = h["perf"]["shares"] if "perf" in h else h.get("shares")
    if shares is None:
        return None
    return lower_bound(haste_ms(row, h)["ms"], shares, row["int8_ms"], h["mac_fraction"], factor)


def short_site(site: str) -> str:
    site = site.strip("/")
    site = site[:-len("/Conv")] if site.endswith("/Conv") else site
    return site[len("layers/"):] if site.startswith("layers/") else site


def markdown(results: List[dict], factor: float = DEFAULT_FACTOR) -> str:
    """The per-layer table and a per-model summary (bounds recomputed from the stored measurements)."""
    nan = float("nan")
    lines = ["| model | layer | map | C_in->C_out | float Conv ms | int8 QDQ piece ms | int8 alone ms [q1, q3] | L | "
             "HasteConv ms [q1, q3] | MAC fraction | GEMM share | non-GEMM ms | bound ms | bound / int8 | "
             "factor needed (s8, int16) | estimate ms | estimate / int8 |",
             "|" + "---|" * 17]
    summary = ["| model | layers | L | bound < int8 | estimate < int8 | bound / int8 (min, median) | "
               "factor needed, s8 (min, median) | estimate / int8 (min, median) |", "|" + "---|" * 8]
    for res in results:
        per_l: Dict[int, list] = {}
        for row in res.get("layers", []):
            i8 = int8_quartiles(row)
            for h in row["haste"].values():
                b = bounds(row, h, factor) or {}
                hm = haste_ms(row, h)
                per_l.setdefault(h["L"], []).append(b)
                fused = "" if row["fused"] else " (not fused)"
                lines.append(
                    f"| {res['id']} | {short_site(row['site'])} | {'x'.join(map(str, row['y_shape'][2:]))} | "
                    f"{row['in_channels']}->{row['out_channels']} | {row['ms']['conv']['ms']:.3f} | "
                    f"{row['ms']['qdq']['ms']:.3f}{fused} | {i8['ms']:.3f} [{i8['p25']:.3f}, {i8['p75']:.3f}] | "
                    f"{h['L']} | {hm['ms']:.3f} [{hm['p25']:.3f}, {hm['p75']:.3f}] | "
                    f"{h['mac_fraction']:.2f} | {b.get('gemm_share', nan):.2f} | {b.get('non_gemm_ms', nan):.3f} | "
                    f"{b.get('bound_ms', nan):.3f} | {b.get('bound_over_int8', nan):.2f} | "
                    f"{b.get('factor_needed', nan):.1f}, {b.get('factor_needed_int16', nan):.1f} | "
                    f"{b.get('estimate_ms', nan):.3f} | {b.get('estimate_over_int8', nan):.2f} |")
        for count, bs in sorted(per_l.items()):
            bs = [b for b in bs if b]
            if not bs:
                continue
            br = np.array([b["bound_over_int8"] for b in bs])
            er = np.array([b["estimate_over_int8"] for b in bs])
            fn = np.array([b["factor_needed"] for b in bs])
            summary.append(f"| {res['id']} | {len(bs)} | {count} | {int((br < 1).sum())} | {int((er < 1).sum())} | "
                           f"{br.min():.2f}, {np.median(br):.2f} | {fn.min():.1f}, {np.median(fn):.1f} | "
                           f"{er.min():.2f}, {np.median(er):.2f} |")
    return "\n".join(lines) + "\n\n" + "\n".join(summary)


def compact_markdown(results: List[dict], factor: float = DEFAULT_FACTOR) -> str:
    """The docs' tables: per model and L the sums over its layers; then one row per layer, both L side by
    side (HasteConv ms with the share of MACs left, its GEMM share, bound / int8, the factor the non-GEMM
    stages need to tie, estimate / int8)."""
    counts = sorted({h["L"] for res in results for row in res.get("layers", []) for h in row["haste"].values()},
                    reverse=True)
    sums = ["| model | layers | L | float Conv ms | int8 alone ms | float HasteConv ms | bound ms | estimate ms | "
            "layers with estimate < int8 | ms saved using it only there |", "|" + "---|" * 10]
    head = "| model | layer | map | C_in->C_out | Conv ms | int8 QDQ ms | int8 alone ms |"
    rule = "|" + "---|" * 7
    for count in counts:
        head += (f" L={count}: HasteConv ms (MACs left) | GEMM share | bound / int8 | factor needed |"
                 f" estimate / int8 |")
        rule += "---|" * 5
    lines = [head, rule]
    for res in results:
        rows = res.get("layers", [])
        for count in counts:
            pairs = [(row, next((h for h in row["haste"].values() if h["L"] == count), None)) for row in rows]
            pairs = [(row, h, bounds(row, h, factor)) for row, h in pairs if h is not None]
            pairs = [(row, h, b) for row, h, b in pairs if b]
            if not pairs:
                continue
            sums.append(f"| {res['id']} | {len(pairs)} | {count} | {sum(r['ms']['conv']['ms'] for r, _, _ in pairs):.1f} | "
                        f"{sum(r['int8_ms'] for r, _, _ in pairs):.1f} | "
                        f"{sum(haste_ms(r, h)['ms'] for r, h, _ in pairs):.1f} | "
                        f"{sum(b['bound_ms'] for _, _, b in pairs):.1f} | {sum(b['estimate_ms'] for _, _, b in pairs):.1f} | "
                        f"{sum(b['estimate_over_int8'] < 1 for _, _, b in pairs)} | "
                        f"{sum(max(0.0, r['int8_ms'] - b['estimate_ms']) for r, _, b in pairs):.2f} |")
        for row in rows:
            cells = (f"| {res['id']} | {short_site(row['site'])} | {'x'.join(map(str, row['y_shape'][2:]))} | "
                     f"{row['in_channels']}->{row['out_channels']} | {row['ms']['conv']['ms']:.3f} | "
                     f"{row['ms']['qdq']['ms']:.3f}{'' if row['fused'] else ' (not fused)'} | {row['int8_ms']:.3f} |")
            for count in counts:
                h = next((h for h in row["haste"].values() if h["L"] == count), None)
                b = bounds(row, h, factor) if h else None
                if b is None:
                    cells += " | | | | |"
                    continue
                need = "never" if not np.isfinite(b["factor_needed"]) else f"{b['factor_needed']:.1f}"
                cells += (f" {haste_ms(row, h)['ms']:.3f} ({100 * h['mac_fraction']:.0f}%) | {b['gemm_share']:.2f} | "
                          f"{b['bound_over_int8']:.2f} | {need} | {b['estimate_over_int8']:.2f} |")
            lines.append(cells)
    return "\n".join(sums) + "\n\n" + "\n".join(lines)


def compact(obj, digits: int = 5):
    """`obj` with every float rounded to `digits` significant digits (the JSON stays small)."""
    if isinstance(obj, float):
        return obj if not np.isfinite(obj) or obj == 0 else float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: compact(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [compact(v, digits) for v in obj]
    return obj


ROW_KEYS = ("site", "in_channels", "out_channels", "y_shape", "residual", "fused", "int8_ops", "qdq_error", "ms",
            "int8_ms", "merge", "ort_int8", "L")


def slim(row: dict) -> dict:
    """What the tables need of a row; the bounds are recomputed from it (`bounds`, --from-json)."""
    out = {k: row[k] for k in ROW_KEYS if k in row}
    if "int8_nodes" in row:
        out["int8_share"] = row["int8_nodes"]["share"]
    if "haste" in row:
        out["haste"] = {count: {"L": h["L"], "mac_fraction": h["mac_fraction"], "conv_over_haste": h["conv_over_haste"],
                                **({"shares": h["perf"]["shares"]} if "perf" in h else {})}
                        for count, h in row["haste"].items()}
    return out


def write_json(path: str, doc: dict) -> None:
    """One line per layer row (`slim`), floats to 4 significant digits: small, and diffs stay readable."""
    doc = compact({**doc, "models": [{**m, "layers": [slim(r) for r in m["layers"]]} if "layers" in m else m
                                     for m in doc["models"]]}, 4)
    models = doc.pop("models")
    lines = [json.dumps({**doc, "models": "below"})[:-1].replace(', "models": "below"', "") + ', "models": [']
    for i, res in enumerate(models):
        rows = res.get("layers")
        head = {k: v for k, v in res.items() if k != "layers"}
        text = json.dumps(head)[:-1]
        if rows is None:
            lines.append(text + "}" + ("," if i + 1 < len(models) else ""))
            continue
        lines.append(text + ', "layers": [')
        lines.extend(json.dumps(r) + ("," if j + 1 < len(rows) else "") for j, r in enumerate(rows))
        lines.append("]}" + ("," if i + 1 < len(models) else ""))
    lines.append("]}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", choices=MODELS)
    ap.add_argument("--models-dir", default=os.environ.get("HASTE_ONNX_MODELS", "/work/shared/models"))
    ap.add_argument("--L", dest="counts", type=int, action="append")
    ap.add_argument("--min-map", type=int, default=56)
    ap.add_argument("--layers", action="append")
    ap.add_argument("--max-layers", type=int)
    ap.add_argument("--calib", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--factor", type=float, default=DEFAULT_FACTOR)
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--from-json", help="print the table of a stored --json result (nothing measured)")
    ap.add_argument("--full", action="store_true", help="the long table: one row per layer and L, every term")
    ap.add_argument("--accuracy", action="store_true",
                    help="instead of timing: relative RMS errors of int8, float HasteConv and the int8 HasteConv "
                         "reference against the float Conv piece")
    args = ap.parse_args(argv)
    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        if doc.get("accuracy"):
            print(accuracy_markdown(doc["models"]))
        else:
            print((markdown if args.full else compact_markdown)(doc["models"], args.factor))
        return 0
    use_perf = not args.no_perf and not args.accuracy and perf_available()
    if not args.no_perf and not args.accuracy and not use_perf:
        print("perf is not usable here: no GEMM split, no bound", file=sys.stderr)
    options = Options(counts=tuple(args.counts or (14, 8, 6)), calib=args.calib, repeats=args.repeats,
                      warmup=args.warmup, factor=args.factor, perf=use_perf)
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice on pre-processing
    results = []
    for model_id in args.model or MODELS:
        results.append(run_model(model_id, args, options, say=lambda s: print(s, flush=True)))
        if args.json:
            doc = {"argv": sys.argv[1:], "accuracy": bool(args.accuracy), "factor": options.factor, "stage_factors": STAGE_FACTORS,
                   "clock": "process CPU time, 1 intra-op thread", "repeats": options.repeats,
                   "warmup": options.warmup, "models": results}
            write_json(args.json, doc)
    if args.markdown:
        if args.accuracy:
            print(accuracy_markdown(results))
        else:
            print((markdown if args.full else compact_markdown)(results, options.factor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
