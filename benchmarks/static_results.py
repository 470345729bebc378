"""docs/static.md: static methods (RED, QSFM), HASTE and their composition on the shared models.

For each model (ResNet-18, ResNet-34, VGG-16-BN, Fashion-MNIST, from --models-dir or $HASTE_ONNX_MODELS):
top-1 on the first --limit test images, conv MACs per image (dense for a static model; for HASTE the kernel's
counters with hashing/merging overheads counted), and latency against the original (process CPU time, one
thread, alternating pairs, batch 1 and 8), with the ideal speed-up 1/(1 - r). Every row gives the `haste-onnx
eval` and `bench` commands that measure the same figures on their own (same code paths, same defaults).

    python benchmarks/static_results.py --limit 2000            # measure (appends to benchmarks/static_results.json)
    python benchmarks/static_results.py --render                # only rewrite docs/static.md from the JSON
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"resnet18": ("resnet18_fmnist.onnx", "ResNet-18"), "resnet34": ("resnet34_fmnist.onnx", "ResNet-34"),
          "vgg16bn": ("vgg16bn_fmnist.onnx", "VGG-16-BN")}
# (method, CLI options): the grid of points per model
POINTS = [
    ("qsfm", ["--static-cut", "0.3"]),
    ("qsfm", ["--static-cut", "0.4"]),
    ("qsfm", ["--static-cut", "0.5"]),
    ("qsfm", []),
    ("qsfm", ["--static-cut", "0.5", "--static-tied"]),
    ("qsfm", ["--static-cut", "0.4", "--qsfm-compensate", "lstsq"]),
    ("qsfm", ["--static-cut", "0.45", "--qsfm-compensate", "lstsq"]),
    ("qsfm", ["--static-cut", "0.5", "--qsfm-compensate", "lstsq"]),
    ("qsfm", ["--static-cut", "0.55", "--qsfm-compensate", "lstsq"]),
    ("qsfm", ["--static-cut", "0.7", "--qsfm-compensate", "lstsq"]),
    ("qsfm", ["--static-cut", "0.4", "--probe", "fashion-mnist-train"]),
    ("qsfm", ["--static-cut", "0.4", "--qsfm-compensate", "lstsq", "--probe", "fashion-mnist-train"]),
    ("red", ["--red-resolution", "0.1"]),
    ("red", ["--red-resolution", "0.1", "--red-threshold", "0.5"]),
    ("haste", ["-L", "14"]),
    ("qsfm+haste", ["--static-cut", "0.4", "--qsfm-compensate", "lstsq", "-L", "14"]),
]
RESULTS = ROOT / "benchmarks" / "static_results.json"
DOC = ROOT / "docs" / "static.md"


def models_dir(arg):
    where = arg or os.environ.get("HASTE_ONNX_MODELS")
    if not where:
        sys.exit("static_results.py: give --models-dir DIR or set HASTE_ONNX_MODELS to the folder of "
                 + ", ".join(f for f, _ in MODELS.values()))
    path = Path(where)
    missing = [f for f, _ in MODELS.values() if not (path / f).is_file()]
    if missing:
        sys.exit(f"static_results.py: {path} lacks {', '.join(missing)}")
    return path


def option_values(options):
    """{flag: value} of a point's options; flags without a value map to True."""
    out, k = {}, 0
    while k < len(options):
        if k + 1 < len(options) and not options[k + 1].startswith("--"):
            out[options[k]] = options[k + 1]
            k += 2
        else:
            out[options[k]] = True
            k += 1
    return out


def measure_point(model, name, path, method, options, images, labels, x_by_batch, limit, cache):
    from haste_onnx.measure.bench import measured_macs
    from haste_onnx.measure.evaluate import EvalOptions, evaluate
    from haste_onnx.measure.sessions import bench_session
    from haste_onnx.measure.timing import latency_stats, time_alternating
    from haste_onnx.plan import HashingOptions, Policy, plan_model
    from haste_onnx.rewrite import rewrite_model
    from haste_onnx.runtime import inference_session
    from haste_onnx.static.costs import conv_macs
    from haste_onnx.static.run import StaticOptions, static_compress

    opts = option_values(options)
    base = method.split("+")[0]
    static, source = None, model
    t0 = time.time()
    if base in ("red", "qsfm"):
        kw = {"method": base, "tied": "--static-tied" in options}
        if "--static-cut" in opts:
            kw["cut"] = float(opts["--static-cut"])
        if "--red-resolution" in opts:
            kw["red_resolution"] = float(opts["--red-resolution"])
        if "--qsfm-compensate" in opts:
            kw["compensate"] = opts["--qsfm-compensate"]
        if "--red-threshold" in opts:
            kw["red_threshold"] = float(opts["--red-threshold"])
        probe_images = None
        if base == "qsfm":
            from haste_onnx.probe.images import probe_images as make_probe
            from haste_onnx.probe.options import ProbeOptions

            source_name = opts.get("--probe", "synthetic")
            probe_images = make_probe(model, ProbeOptions(source=source_name), None, None)[0]
            cache = cache.setdefault(source_name, {})
        source, static = static_compress(model, StaticOptions(**kw), probe_images, threads=1, cache=cache)
    final = source
    macs_before = float(sum(conv_macs(model).values()))
    r = 1 - float(sum(conv_macs(source).values())) / macs_before
    if "haste" in method:
        plan = plan_model(source, HashingOptions(hyperplanes=int(opts.get("-L", 14))), Policy())
        final, _ = rewrite_model(source, plan)
        measured = measured_macs(source, final, x_by_batch[8], 1)["totals"]["rewritten_conv_macs_with_overheads"]
        r = 1 - measured / macs_before
    build_s = time.time() - t0
    session = inference_session(final, threads=1)
    feed = session.get_inputs()[0].name
    pred = np.concatenate([session.run(None, {feed: images[i:i + 100]})[0].argmax(1) for i in range(0, len(images), 100)])
    acc = float(np.mean(pred == labels))
    latency = {}
    for batch, x in x_by_batch.items():
        a, b = bench_session(model, 1), bench_session(final, 1)
        ta, tb = time_alternating(a, b, {feed: x}, 20 if batch == 1 else 10, 3, time.process_time)
        la, lb = latency_stats(ta), latency_stats(tb)
        latency[batch] = {"original_ms": la["median_ms"], "method_ms": lb["median_ms"],
                          "speedup": la["median_ms"] / lb["median_ms"]}
    flags = " ".join(options)
    common = f"--method {method} {flags}".strip() if method != "haste" else flags
    return {"model": name, "method": method, "options": options, "accuracy": acc, "conv_mac_reduction": r,
            "ideal_speedup": 1 / (1 - r), "latency": latency, "images": int(len(labels)), "build_s": build_s,
            "static": static.to_json()["static"] if static else None,
            "commands": [f"haste-onnx eval {path.name} --limit {limit} --batch 100 --threads 1 {common}",
                         f"haste-onnx bench {path.name} --cpu-time --threads 1 --batch 8 --repeats 10 "
                         f"--profile-runs 0 --no-memory {common}"]}


def measure(args):
    from haste_onnx import data as hd
    from haste_onnx.model_io import load_model

    folder = models_dir(args.models_dir)
    x, y = hd.load_fashion_mnist("test")
    x = (np.pad(x[:args.limit], ((0, 0), (2, 2), (2, 2))).astype(np.float32)[:, None] / 255.0 - 0.2860) / 0.3530
    y = y[:args.limit].astype(np.int64)
    done = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"points": [], "originals": {}}
    for key in args.models:
        file, label = MODELS[key]
        path = folder / file
        model = load_model(path).model
        from haste_onnx.runtime import inference_session

        s = inference_session(model, threads=1)
        feed = s.get_inputs()[0].name
        pred = np.concatenate([s.run(None, {feed: x[i:i + 100]})[0].argmax(1) for i in range(0, len(x), 100)])
        done["originals"][key] = {"accuracy": float(np.mean(pred == y)), "images": int(len(y))}
        cache = {}
        for method, options in POINTS:
            if args.only and method not in args.only:
                continue
            if any(p["model"] == key and p["method"] == method and p["options"] == options and p["images"] == len(y)
                   for p in done["points"]):
                continue
            t = time.time()
            point = measure_point(model, key, path, method, options, x, y, {1: x[:1], 8: x[:8]}, args.limit, cache)
            done["points"].append(point)
            RESULTS.write_text(json.dumps(done, indent=1))
            print(f"{key} {method} {' '.join(options)}: top-1 {100 * point['accuracy']:.2f}%, cut "
                  f"{100 * point['conv_mac_reduction']:.1f}%, speed-up b1 {point['latency'][1]['speedup']:.2f}x "
                  f"b8 {point['latency'][8]['speedup']:.2f}x ({time.time() - t:.0f} s)", flush=True)


def render():
    doc = json.loads(RESULTS.read_text())
    out = ["# Static methods beside HASTE: RED, QSFM and their composition", "",
           "Generated by `python benchmarks/static_results.py` from `benchmarks/static_results.json`; do not edit.",
           "",
           "Top-1 on the first N Fashion-MNIST test images; conv MACs per image (dense for a static model, so "
           "exact; with HASTE the kernel's counters, hashing/merging overheads counted); latency: process CPU "
           "time, 1 thread, alternating pairs with the original (median of 20 pairs at batch 1, 10 at batch 8); "
           "ideal = 1/(1 - r). QSFM is data-free (synthetic probe images) unless it says `--probe "
           "fashion-mnist-train`. Each row's `eval` and `bench` commands measure the same figures on their own "
           "(the models are the `--models-dir` files; add `--data-dir` if Fashion-MNIST is elsewhere).", ""]
    for key, (_, label) in MODELS.items():
        points = sorted((p for p in doc["points"] if p["model"] == key),
                        key=lambda p: (p["method"], p["options"]))
        if not points:
            continue
        o = doc["originals"][key]
        out += [f"## {label}", "", f"Original: {100 * o['accuracy']:.2f}% on {o['images']} images.", "",
                "| method | options | top-1 | diff (pt) | conv MACs cut | ideal | speed-up b1 | b8 | b8 / ideal |",
                "|---|---|---|---|---|---|---|---|---|"]
        for p in points:
            d = 100 * (p["accuracy"] - o["accuracy"])
            b1, b8 = p["latency"]["1"]["speedup"], p["latency"]["8"]["speedup"]
            out.append(f"| {p['method']} | `{' '.join(p['options']) or '(default: fidelity target)'}` | "
                       f"{100 * p['accuracy']:.2f}% | {d:+.2f} | {100 * p['conv_mac_reduction']:.1f}% | "
                       f"{p['ideal_speedup']:.2f}x | {b1:.2f}x | {b8:.2f}x | {100 * b8 / p['ideal_speedup']:.0f}% |")
        best = []
        for method in dict.fromkeys(p["method"] for p in points):
            ok = [p for p in points if p["method"] == method and 100 * (o["accuracy"] - p["accuracy"]) <= 1.0]
            if ok:
                p = max(ok, key=lambda q: q["conv_mac_reduction"])
                b8 = p["latency"]["8"]["speedup"]
                best.append(f"{method} `{' '.join(p['options']) or 'default'}`: {100 * p['conv_mac_reduction']:.1f}% "
                            f"for {100 * (p['accuracy'] - o['accuracy']):+.2f} pt, {b8:.2f}x at batch 8 "
                            f"({100 * b8 / p['ideal_speedup']:.0f}% of ideal)")
            else:
                best.append(f"{method}: no point within 1 pt")
        out += ["", "Best point within 1 pt, per method: " + "; ".join(best) + ".", ""]
        out += ["", "Commands, in row order:", ""]
        out += [f"- `{p['commands'][0]}`<br>`{p['commands'][1]}`" for p in points]
        out.append("")
    out += closing(doc)
    DOC.write_text("\n".join(out) + "\n")


def closing(doc):
    """The closing note: per model the best point within 1 pt of any method, and the static methods' speed
    against ideal over every measured static point."""
    lines = ["## Closing note", ""]
    for key, (_, label) in MODELS.items():
        points = [p for p in doc["points"] if p["model"] == key]
        if not points:
            continue
        o = doc["originals"][key]["accuracy"]
        ok = [p for p in points if 100 * (o - p["accuracy"]) <= 1.0]
        if ok:
            p = max(ok, key=lambda q: q["conv_mac_reduction"])
            lines.append(f"- {label}: best within 1 pt: {p['method']} `{' '.join(p['options'])}`, "
                         f"{100 * p['conv_mac_reduction']:.1f}% of conv MACs for "
                         f"{100 * (p['accuracy'] - o):+.2f} pt, {p['latency']['1']['speedup']:.2f}x (batch 1) / "
                         f"{p['latency']['8']['speedup']:.2f}x (batch 8) faster than the original.")
    red = [p for p in doc["points"] if p["method"] == "red"]
    haste = [p for p in doc["points"] if p["method"] == "haste"]
    if red:
        lines.append(f"- RED finds little to merge in these trained models: at most "
                     f"{100 * max(p['conv_mac_reduction'] for p in red):.1f}% of conv MACs over {len(red)} points "
                     "(hashed 3x3 filters are almost never identical; merging near ones by distance costs "
                     "accuracy before it saves MACs), and hashing alone costs accuracy.")
    if haste:
        lines.append(f"- HASTE (-L 14, as published) runs at {min(p['latency']['1']['speedup'] for p in haste):.2f}x-"
                     f"{max(p['latency']['8']['speedup'] for p in haste):.2f}x of the original's speed on these "
                     "32x32 inputs: its per-tile hashing and merging cost what it saves; a static model is plain "
                     "dense convolution and keeps most of its ideal speed-up. On top of QSFM it adds MACs cut but "
                     "costs accuracy and speed (the qsfm+haste rows).")
    static = [p for p in doc["points"] if "haste" not in p["method"] and p["conv_mac_reduction"] > 0.05]
    if static:
        ratios = [p["latency"][b]["speedup"] / p["ideal_speedup"] for p in static for b in ("1", "8")]
        lines.append(f"- Static points that cut more than 5% ({len(static)}): measured speed-up / ideal "
                     f"1/(1-r) from {100 * min(ratios):.0f}% to {100 * max(ratios):.0f}% (median "
                     f"{100 * float(np.median(ratios)):.0f}%), batch 1 and 8, one thread. Two threads were not "
                     "measured here.")
    lines.append("")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--only", nargs="+", default=None, help="only these methods")
    parser.add_argument("--render", action="store_true", help="only render docs/static.md")
    args = parser.parse_args()
    if not args.render:
        measure(args)
    render()


if __name__ == "__main__":
    main()
