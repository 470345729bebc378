"""`haste-onnx demo`: the bundled ResNet-20, rewritten, on the 10,000 Fashion-MNIST test images.

Steps: find the model (zoo name `resnet20` by default, or any path/name) ->
find Fashion-MNIST, fetching it into the cache when missing (one line says
so) -> rewrite with the default settings (or the given hashing options) ->
run original and rewritten over the images (`--limit`, default all) with
the HasteConv counters switched on -> measure latency on one batch of
`--batch` images, alternating original and rewritten after a warm-up, same
session options, `--threads` intra-op threads -> print accuracy, measured
conv MACs and latency of both.
"""
from __future__ import annotations

import json
import sys

from .args import (add_data, add_hashing, add_model_input, add_output_format, add_runtime, add_selection,
                   progress_printer, ranged)
from .probe_args import add_inputs, add_probe, decide_plan

HELP = "rewrite the bundled ResNet-20 and compare accuracy, measured conv MACs and latency on Fashion-MNIST"


def configure(parser) -> None:
    add_model_input(parser, metavar="MODEL", optional_default="resnet20")
    add_data(parser)
    add_runtime(parser)
    lat = parser.add_argument_group("latency")
    lat.add_argument("--repeats", type=ranged(int, 1, None, "--repeats"), default=20, metavar="R",
                     help="timed runs of each model on one batch, alternating (default 20; median reported)")
    lat.add_argument("--warmup", type=ranged(int, 0, None, "--warmup"), default=3, metavar="W",
                     help="untimed runs of each model first (default 3)")
    lat.add_argument("--no-fetch", action="store_true", help="do not download Fashion-MNIST when it is missing")
    lat.add_argument("--no-int8", action="store_true",
                     help="leave out onnxruntime's int8 alone and the best plan (--int8) beside the rewrite")
    add_hashing(parser)
    add_probe(parser)
    add_inputs(parser)
    add_selection(parser)
    add_output_format(parser)


def run(args) -> int:
    import time

    import numpy as np

    from ..measure.evaluate import EvalOptions, SeedPlan, evaluate
    from ..measure.sessions import bench_session
    from ..measure.timing import time_alternating
    from ..measure.versions import versions
    from ..rewrite import rewrite_model
    from .args import hashing_options, selection_policy
    from .eval import load_model_and_data

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    loaded, entry, images, labels, data_info = load_model_and_data(args, fetch=not args.no_fetch, say=say)
    say_progress = progress_printer(True)
    plan, allocation = decide_plan(args, loaded.model, args.threads, data_info["mean"], data_info["std"],
                                   say_progress)
    if not plan.replaced():
        return _nothing_worth_replacing(args, loaded, entry, images, labels, data_info, allocation)
    hashing = hashing_options(args)
    options = EvalOptions(hashing=hashing, policy=selection_policy(args), batch=args.batch, threads=args.threads,
                          plans=[SeedPlan(hashing.seed, plan, allocation.to_json() if allocation else None)])
    say_progress(f"running {loaded.path.name} and its rewrite on {len(labels)} images, then timing both ...")
    result = evaluate(loaded.model, images, labels, options)
    rewritten, report = rewrite_model(loaded.model, plan)
    original = bench_session(loaded.model, args.threads)
    haste = bench_session(rewritten, args.threads)
    batch = np.ascontiguousarray(images[:args.batch])
    feed = {original.get_inputs()[0].name: batch}
    t_orig, t_haste = time_alternating(original, haste, feed, args.repeats, args.warmup, time.perf_counter)
    latency = {"batch": int(len(batch)), "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
               "original_ms": float(np.median(t_orig)), "rewritten_ms": float(np.median(t_haste)),
               "original_samples_ms": t_orig, "rewritten_samples_ms": t_haste}
    doc = {"command": "demo", "model": str(loaded.path), "model_name": entry.name if entry else None,
           "versions": versions(), "data": data_info, "rewrite": report.summary(), "plan": plan.summary_line(),
           **result, "latency": latency}
    if allocation is not None:
        doc["allocation"] = allocation.to_json()
    if not args.no_int8:
        from .demo_int8 import int8_comparison

        doc["int8"] = int8_comparison(args, loaded.model, images, labels, result["original"]["accuracy"],
                                      say_progress)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_demo(doc))
    return 0


def format_demo(doc: dict) -> str:
    o, r, lat, d = doc["original"], doc["runs"][0], doc["latency"], doc["data"]
    t, h, rw = r["totals"], doc["settings"]["hashing"], doc["rewrite"]
    name = doc["model_name"] or doc["model"]
    speed = lat["original_ms"] / lat["rewritten_ms"] if lat["rewritten_ms"] else float("nan")
    where = f"{d['source']} {d['split']} split" if d.get("split") else d["source"]
    lines = [
        f"model:      {name} ({doc['model']})",
        f"data:       {d['images']} images, {where} ({d['where']})",
        f"rewrite:    {rw['replaced']} of {rw['layers']} conv layers -> HasteConv ({doc['plan']}; "
        f"sparsity {h['sparsity']}, seed {h['seed']}, merge {h.get('merge', 'mean')}"
        + (", magnitude split)" if h.get("magnitude_split") else ")"),
        f"accuracy:   original {100 * o['accuracy']:.2f}%, rewritten {100 * r['accuracy']:.2f}% "
        f"({100 * r['difference']['accuracy']:+.2f} pt; predictions agree on {100 * r['agreement']:.1f}%)",
        f"conv MACs:  original {o['conv_macs'] / 1e6:.2f} M/image, rewritten {t['rewritten_conv_macs'] / 1e6:.2f} M/image "
        f"measured: cut {100 * t['conv_mac_reduction']:.1f}% ({100 * t['conv_mac_reduction_with_overheads']:.1f}% "
        f"with hashing/merging overheads; replaced layers cut {100 * t['replaced_mac_reduction']:.1f}%)",
        f"latency:    original {lat['original_ms']:.2f} ms, rewritten {lat['rewritten_ms']:.2f} ms per batch of "
        f"{lat['batch']} (median of {lat['repeats']}, {lat['threads']} threads): speedup {speed:.2f}x",
    ]
    if doc.get("allocation"):
        from ..probe import allocation_line

        lines.insert(3, f"            {allocation_line(doc['allocation'])}")
    if doc.get("int8"):
        from .demo_int8 import int8_lines

        lines += int8_lines(doc["int8"])
    return "\n".join(lines)


def _nothing_worth_replacing(args, loaded, entry, images, labels, data_info, allocation) -> int:
    """The plan replaces nothing: say so plainly, with the original's accuracy, and succeed."""
    from ..measure.predictor import Predictor
    from ..measure.statistics import accuracy_block
    from ..measure.versions import versions

    why = (allocation.nothing_to_do() if hasattr(allocation, "nothing_to_do") else None) or "no layer is eligible"
    predicted, _, _ = Predictor(loaded.model, args.threads).predict(images, args.batch)
    original = accuracy_block(predicted == labels)
    doc = {"command": "demo", "model": str(loaded.path), "model_name": entry.name if entry else None,
           "versions": versions(), "data": data_info, "rewrite": None, "nothing_to_do": why,
           "original": original, "allocation": allocation.to_json() if allocation is not None else None}
    if not args.no_int8:
        from .demo_int8 import int8_comparison, int8_lines

        doc["int8"] = int8_comparison(args, loaded.model, images, labels, original["accuracy"],
                                      progress_printer(True))
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    d = doc["data"]
    where = f"{d['source']} {d['split']} split" if d.get("split") else d["source"]
    print("\n".join([
        f"model:      {entry.name if entry else loaded.path} ({loaded.path})",
        f"data:       {d['images']} images, {where} ({d['where']})",
        f"rewrite:    nothing was worth replacing on this machine: {why}",
        f"accuracy:   original {100 * original['accuracy']:.2f}% (the model stays as it is: speed-up 1.00x)",
    ] + (int8_lines(doc["int8"]) if doc.get("int8") else [])))
    return 0
