"""`haste-onnx bench MODEL`: latency of the original and the rewritten model, timed in one process.

MODEL is a path or a model name (see `haste_onnx.zoo`). It is rewritten in
memory with the hashing, probe and layer-selection options of `rewrite` (a model
that already holds HasteConv is compared with its stripped copy). The first
`--batch` images of the data set are the input. The report gives the
latency of both models (alternating runs, same session options), their
ratio, the ideal ratio from the measured conv MAC cut, per-layer times from
onnxruntime's profiler, and the peak memory of both. See
`haste_onnx.measure.bench` and docs/cli.md.
"""
from __future__ import annotations

import json
import sys
import time

from .args import add_data, add_hashing, add_output_format, add_runtime, add_selection, ranged
from .probe_args import add_inputs, add_probe, decide_plan
from .static_args import add_static
from .steer_args import add_level_sweep
from .tables import format_table

HELP = "time the original and the rewritten model (latency, ideal vs measured speed-up, per layer, memory)"


def configure(parser) -> None:
    group = parser.add_argument_group("model input")
    group.add_argument("model", metavar="MODEL",
                       help="an ONNX file, or a model name: resnet20 (bundled), resnet18, resnet34, vgg16, mobilenetv2")
    group.add_argument("--against", metavar="FILE", default=None,
                       help="compare MODEL with this model as it is (a rewrite made by `haste-onnx rewrite`, or "
                            "any other variant, e.g. onnxruntime's int8 quantization) instead of rewriting MODEL")
    group.add_argument("--input", dest="inputs", action="append", default=None, metavar="[NAME=]FILE.npy",
                       help="the model's own input: an array in the model's layout (NCHW, NHWC, any rank) whose "
                            "first --batch rows are the batch (repeated when fewer); its shape fixes the dims the "
                            "graph leaves free. Repeat once per input (NAME= may be left out for a model with one "
                            "input). Replaces the data options")
    add_data(parser)
    add_runtime(parser, batch=1)
    t = parser.add_argument_group("timing")
    t.add_argument("--warmup", type=ranged(int, 0, None, "--warmup"), default=5, metavar="W",
                   help="untimed runs of each model first (default 5)")
    t.add_argument("--repeats", type=ranged(int, 1, None, "--repeats"), default=50, metavar="R",
                   help="timed runs of each model, alternating (default 50; median reported)")
    t.add_argument("--cpu-time", action="store_true",
                   help="time with the process CPU clock instead of the wall clock (with --threads 1: robust "
                        "to other processes on a busy machine)")
    t.add_argument("--profile-runs", type=ranged(int, 0, None, "--profile-runs"), default=10, metavar="K",
                   help="profiled runs of each model for the per-layer times, in separate sessions (default 10; "
                        "0: no per-layer table)")
    t.add_argument("--no-memory", action="store_true", help="do not measure peak memory (child processes)")
    t.add_argument("--no-fetch", action="store_true", help="do not download Fashion-MNIST when it is missing")
    add_hashing(parser)
    add_probe(parser)
    add_inputs(parser)
    add_selection(parser)
    add_static(parser)
    add_level_sweep(parser)
    add_output_format(parser)


def run(args) -> int:
    from ..errors import CheckError, InputError
    from ..measure.bench import BenchOptions, bench
    from ..measure.versions import machine_versions
    from ..runtime import LibraryNotFoundError
    from .args import HASHING_DESTS, SELECTION_DESTS, refuse_together
    from .probe_args import PROBE_DESTS
    from .eval import load_model_and_data, load_named_model

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.limit is None:
        args.limit = args.batch  # only the first B images are used
    against = None
    if args.against:
        from ..model_io import load_model

        refuse_together(args, "against", HASHING_DESTS + SELECTION_DESTS + PROBE_DESTS + ("plan",))
        against = load_model(args.against).model
    if args.inputs:
        loaded, entry = load_named_model(args.model)
        feed, data_info = read_inputs(args.inputs, loaded.model)
        images = None
    else:
        loaded, entry, images, _, data_info = load_model_and_data(args, fetch=not args.no_fetch, say=say)
        feed = None
    if args.levels is not None:
        refuse_together(args, "levels", HASHING_DESTS + SELECTION_DESTS + PROBE_DESTS + ("against", "inputs"))
        return bench_levels(args, loaded, images, data_info, None if args.json else say)
    if getattr(args, "method", "haste") != "haste":
        refuse_together(args, "method", ("against", "inputs"))
        return bench_static(args, loaded, entry, images, data_info, None if args.json else say)
    mean, std = data_info.get("mean"), data_info.get("std")
    plan, allocation = (None, None) if against is not None else decide_plan(args, loaded.model, args.threads, mean,
                                                                            std, None if args.json else say)
    options = BenchOptions(plan=plan, batch=args.batch,
                           threads=args.threads, warmup=args.warmup, repeats=args.repeats, cpu_time=args.cpu_time,
                           profile_runs=args.profile_runs, memory=not args.no_memory)
    try:
        result = bench(loaded.model, images, options, progress=None if args.json else say, feed=feed,
                       against=against)
    except LibraryNotFoundError as err:
        raise CheckError(str(err)) from err
    except ValueError as err:
        raise InputError(str(err)) from err
    doc = {"command": "bench", "model": str(loaded.path), "model_name": entry.name if entry else None,
           "against": args.against,
           "plan": plan.summary_line() if plan is not None else f"as given in {args.against}",
           "versions": machine_versions(), "data": data_info, **result}
    if allocation is not None:
        doc["allocation"] = allocation.to_json()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_bench(doc))
    return 0


def bench_levels(args, loaded, images, data_info, say) -> int:
    """--levels: one session of a steerable model timed at each level against the original and the level's
    branch alone (measure/levels.py)."""
    from ..errors import InputError
    from ..measure import levels
    from ..measure.timing import batch_of
    from ..measure.versions import machine_versions

    x, _ = batch_of(images, args.batch)
    clock = time.process_time if args.cpu_time else time.perf_counter
    try:
        result = levels.bench_levels(loaded.model, x, args.levels, args.threads, args.repeats, args.warmup, clock,
                                     say)
    except ValueError as err:
        raise InputError(str(err)) from err
    doc = {"command": "bench", "model": str(loaded.path), "versions": machine_versions(), "data": data_info,
           "clock": "process CPU time" if args.cpu_time else "wall", **result}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    rows = [(f"{r['level']:g}", _ms(r["original"]["median_ms"]), _ms(r["alone"]["median_ms"]),
             _ms(r["steerable"]["median_ms"]), _x(r["steerable_over_alone"]["median"]),
             _x(r["steerable_over_original"]["median"]), _ms(r["switching"]["median_ms"]),
             "-" if r["conv_macs"] is None else f"{r['conv_macs'] / 1e6:.2f} M", _pct(r["conv_mac_cut"]))
            for r in result["levels"]]
    print(f"batch {args.batch}, {args.threads} thread(s), {doc['clock']}, {args.repeats} rounds (medians, ms per run)")
    print(format_table(["level", "original", "level alone", "steerable", "steerable/alone", "steerable/original",
                        "switching", "conv MACs/image", "cut"], rows, right=(1, 2, 3, 4, 5, 6, 7, 8)))
    print("level alone: the level's branch as a model of its own (the separately rewritten model); switching: the "
          "steerable session with the level changed before every call; ratios: medians of per-round ratios")
    return 0


def bench_static(args, loaded, entry, images, data_info, say) -> int:
    """--method red|qsfm[+haste]: the original against the static model (or its HASTE rewrite), alternating
    runs as `bench` times them; the ideal speed-up is 1/(1 - r), r the cut of all conv MACs (dense for a static
    model; measured by the kernel's counters, overheads counted, after +haste)."""
    from ..measure.bench import measured_macs
    from ..measure.sessions import bench_session
    from ..measure.timing import batch_of, latency_stats, pair_ratios, time_alternating
    from ..measure.versions import machine_versions
    from ..rewrite import rewrite_model
    from .static_args import static_pass

    source, static = static_pass(args, loaded.model, args.threads, data_info["mean"], data_info["std"], say)
    x, repeated = batch_of(images, args.batch)
    final, r = source, 1 - static.macs_after / static.macs_before
    if "+" in args.method:
        plan, _ = decide_plan(args, source, args.threads, data_info["mean"], data_info["std"], say)
        final, _ = rewrite_model(source, plan)
        measured = measured_macs(source, final, x, args.threads)["totals"]["rewritten_conv_macs_with_overheads"]
        r = 1 - measured / static.macs_before
    clock = time.process_time if args.cpu_time else time.perf_counter
    feed = {loaded.model.graph.input[0].name: x}
    first, second = bench_session(loaded.model, args.threads), bench_session(final, args.threads)
    t0, t1 = time_alternating(first, second, feed, args.repeats, args.warmup, clock)
    lo, lr = latency_stats(t0), latency_stats(t1)
    speedup = lo["median_ms"] / lr["median_ms"]
    ideal = 1 / (1 - r) if r < 1 else None
    doc = {"command": "bench", "method": args.method, "model": str(loaded.path), "versions": machine_versions(),
           "settings": {"batch": args.batch, "threads": args.threads, "repeats": args.repeats,
                        "warmup": args.warmup, "clock": "process CPU time" if args.cpu_time else "wall"},
           "latency_original_ms": lo["median_ms"], "latency_rewritten_ms": lr["median_ms"], "speedup": speedup,
           "pair_speedup": pair_ratios(t0, t1), "conv_mac_reduction": r, "ideal_speedup": ideal,
           "measured_over_ideal": speedup / ideal if ideal else None, **static.to_json()}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(static.summary_line())
    print(f"batch {args.batch}, {args.threads} thread(s), {doc['settings']['clock']}, {args.repeats} alternating pairs")
    print(f"latency: original {lo['median_ms']:.3f} ms, {args.method} {lr['median_ms']:.3f} ms: speed-up "
          f"{speedup:.2f}x (pairs: median {doc['pair_speedup']['median']:.2f}x, quartiles "
          f"{doc['pair_speedup']['p25']:.2f}-{doc['pair_speedup']['p75']:.2f}); ideal 1/(1-r) {ideal:.2f}x for "
          f"r = {100 * r:.1f}%: {100 * speedup / ideal:.0f}% of ideal")
    return 0


def read_inputs(specs, model):
    """({input name: array}, data description) from `--input [NAME=]FILE.npy` values; InputError (one line) for
    a missing or unreadable file, an unknown name, or a name left out where the model has several inputs."""
    import numpy as np

    from ..errors import InputError
    from ..model_inputs import image_inputs

    names = [i.name for i in image_inputs(model)]
    feed, files = {}, {}
    for spec in specs:
        name, sep, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if not name:
            if len(names) != 1:
                raise InputError(f"--input {spec}: the model has {len(names)} inputs ({', '.join(names)}); "
                                 "say which with NAME=FILE.npy")
            name = names[0]
        if name not in names:
            raise InputError(f"--input {spec}: the model has no input {name!r} (inputs: {', '.join(names)})")
        try:
            feed[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"--input {spec}: cannot read {path}: {err}") from err
        files[name] = path
    missing = [n for n in names if n not in feed]
    if missing:
        raise InputError(f"--input: no array for the model's input(s) {', '.join(missing)}")
    return feed, {"source": "arrays", "where": ", ".join(f"{k}={v}" for k, v in files.items()), "split": None,
                  "images": int(min(len(v) for v in feed.values())), "mean": None, "std": None,
                  "inputs": {k: {"file": files[k], "shape": list(v.shape), "dtype": str(v.dtype)}
                             for k, v in feed.items()}}


# ---- the report ----------------------------------------------------------------------------------

def _ms(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _x(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _pct(x, digits=1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def format_bench(doc: dict) -> str:
    from ..probe import allocation_line

    s, d, v = doc["settings"], doc["data"], doc["versions"]
    lat, ideal, f = doc["latency"], doc["ideal"], doc["flops"]
    name = doc["model_name"] or doc["model"]
    h = s["plan"] if isinstance(s["plan"], dict) else {}
    rewrite = (f"as given in {doc['against']}" if doc.get("against") else
               "the model's own HasteConv layers; original = stripped to Conv" if s["prebuilt"] else
               f"{doc['plan']}, sparsity {h.get('sparsity')}, seed {h.get('seed')}, merge {h.get('merge', 'mean')}"
               + (", magnitude split" if h.get("magnitude_split") else "")
               + f"; {doc['rewrite']['replaced']} of {doc['rewrite']['layers']} conv layers replaced")
    where = f"{d['source']} {d['split']} split" if d.get("split") else d["source"]
    parts = [
        f"model:    {name} ({doc['model']})",
        f"rewrite:  {rewrite}",
        *([f"          {allocation_line(doc['allocation'])}"] if doc.get("allocation") else []),
        f"input:    batch {s['batch']} of {where} ({d['where']})" + (", images repeated" if doc["batch"]["repeated"]
                                                                   else "") + f", shape {doc['batch']['shape']}",
        f"settings: onnxruntime {v['onnxruntime']}, all graph optimisations, intra-op threads {s['threads']}, "
        f"{s['warmup']} warm-up + {s['repeats']} alternating runs each, clock: {s['clock']}; {v['cpus']} CPUs",
        "",
    ]
    rows = []
    for label, key in (("original", "original"), ("rewritten", "rewritten")):
        x = lat[key]
        rows.append((label, _ms(x["median_ms"]), _ms(x["p25_ms"]), _ms(x["p75_ms"]), _ms(x["min_ms"]),
                     _ms(x["max_ms"]), _pct(x["iqr_rel"]), _ms(x["median_ms"] / s["batch"])))
    parts.append(format_table(["latency (ms/batch)", "median", "p25", "p75", "min", "max", "IQR/median",
                               "ms/image"], rows, right=(1, 2, 3, 4, 5, 6, 7)))
    ps = lat["pair_speedup"]
    parts.append(f"speed-up: {_x(doc['speedup'])} (ratio of medians, original / rewritten); per-pair ratios: median "
                 f"{_x(ps['median'])}, quartiles {_x(ps['p25'])}-{_x(ps['p75'])}")
    parts.append("")
    if ideal["reduction"] is None:
        parts.append("measured conv MACs: none (no HasteConv in the compared model)")
    else:
        parts.append(f"measured conv MACs on this batch: cut {_pct(f['conv_mac_reduction'])} of all conv MACs, "
                     f"{_pct(f['conv_mac_reduction_with_overheads'])} with hashing/centring/merging overheads "
                     f"(replaced layers: {_pct(f['replaced_mac_reduction'])}, "
                     f"{_pct(f['replaced_mac_reduction_with_overheads'])})")
    parts.append(f"ideal:    {_x(ideal['speedup'])} = 1/(1 - r), r = {_pct(ideal['reduction'])} (all conv MACs, "
                 f"overheads included); measured {_x(doc['speedup'])} = {_pct(ideal['measured_over_ideal'], 0)} of "
                 f"ideal; time saved {_pct(ideal['time_saving'])} (ideal {_pct(ideal['reduction'])})")
    if ideal["conv_share_original"] is not None:
        parts.append(f"          convs take {_pct(ideal['conv_share_original'])} of the original's kernel time "
                     f"(profiler); with that share the bound is {_x(ideal['amdahl_speedup'])} (Amdahl)")
    p = doc["profile"]
    if p:
        parts.append("")
        parts.append(f"per layer (onnxruntime profiler, mean ms per run over {p['original']['runs']} runs, separate "
                     "sessions):")
        rows = []
        for r in p["layers"]:
            fused = f" +{r['original_fused']}" if r["original_fused"] else ""
            rfused = f" +{r['rewritten_fused']}" if r.get("rewritten_fused") else ""
            rows.append((r["node"], f"Conv{fused}", _ms(r["original_ms"]), f"{r['rewritten_op']}{rfused}",
                         _ms(r["rewritten_ms"]),
                         _x(r["speedup"]), _pct(r["mac_cut"]), _pct(r["mac_cut_with_overheads"])))
        po, pr = p["original"], p["rewritten"]
        oo = ", ".join(f"{k} {v:.3f}" for k, v in po["other_by_op"].items())
        ro = ", ".join(f"{k} {v:.3f}" for k, v in pr["other_by_op"].items())
        rows.append(("other ops", "", _ms(po["other_ms"]), "", _ms(pr["other_ms"]),
                     _x(po["other_ms"] / pr["other_ms"]) if pr["other_ms"] else "-", "", ""))
        rows.append(("total (kernels)", "", _ms(po["kernel_ms"]), "", _ms(pr["kernel_ms"]),
                     _x(po["kernel_ms"] / pr["kernel_ms"]) if pr["kernel_ms"] else "-", "", ""))
        parts.append(format_table(["layer", "original op", "ms", "rewritten op", "ms", "speed-up", "MAC cut",
                                   "+ overheads"], rows, right=(2, 4, 5, 6, 7)))
        parts.append(f"replaced layers together: {_ms(p['replaced_original_ms'])} -> {_ms(p['replaced_rewritten_ms'])} "
                     f"ms ({_x(p['replaced_speedup'])})")
        parts.append(f"other ops, original: {oo or '-'}")
        parts.append(f"other ops, rewritten: {ro or '-'}")
        parts.append("(+Relu, +Add: ops fused into the layer's kernel, by onnxruntime into its Conv or by the "
                     "rewriter into HasteConv; an Add or Relu not fused is counted under 'other')")
    m = doc["memory"]
    if m:
        parts.append("")
        sess = ""
        if m["original_session_mb"] is not None and m["rewritten_session_mb"] is not None:
            sess = (f"; session and runs: {m['original_session_mb']:.1f} MB -> {m['rewritten_session_mb']:.1f} MB"
                    + (f" ({m['session_ratio']:.2f}x)" if m["session_ratio"] is not None else ""))
        parts.append(f"peak memory (child process each): original {m['original_peak_mb']:.1f} MB, rewritten "
                     f"{m['rewritten_peak_mb']:.1f} MB ({m['ratio']:.2f}x){sess}")
    return "\n".join(parts)
