"""Per-layer latency of HasteConv against onnxruntime's own Conv, as ratios.

Both sides run in one process, alternating, after warm-up; medians are
reported. Inputs are ReLU'd Gaussians, so how much merges depends only on the
number of hyperplanes; real activations merge more (see the model benchmark).

    python benchmarks/bench_layers.py [--threads 2] [--batch 1] [--hyperplanes 64 14 8] [--cpu-time] [--save]

L=64 merges nothing (every channel keeps its own code): that row is the op's
overhead against onnxruntime's Conv. `--save` writes
benchmarks/results/layers_b<B>_t<T>.json, which docs/results.md includes.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import haste_onnx
from haste_onnx.op import draw_hyperplanes, patch_size

SHAPES = [(64, 32), (128, 16), (256, 8), (512, 4)]  # ResNet-18 (CIFAR-style) 3x3 layers: channels, size


def _model(channels, size, batch, hyperplanes, tile, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((channels, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    x_info = helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [batch, channels, size, size])
    y_info = helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [batch, channels, size, size])
    opsets = [helper.make_opsetid("", 17)]
    if hyperplanes:
        ph, pw = patch_size((3, 3), (1, 1), (1, 1), tile)
        inits.append(numpy_helper.from_array(draw_hyperplanes(hyperplanes, ph * pw, 2 / 3, seed), "H"))
        node = helper.make_node("HasteConv", ["X", "W", "B", "H"], ["Y", "S"], domain="haste", pads=[1, 1, 1, 1],
                                kernel_shape=[3, 3], tile=list(tile))
        opsets.append(helper.make_opsetid("haste", 1))
        outputs = [y_info, helper.make_tensor_value_info("S", onnx.TensorProto.INT64, [7])]
    else:
        node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])
        outputs = [y_info]
    graph = helper.make_graph([node], "layer", [x_info], outputs, inits)
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _session(model, threads):
    opts = haste_onnx.session_options(threads=threads)
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def measure(channels, size, batch, hyperplanes, threads, tile=(4, 4), repeats=30, clock=time.perf_counter):
    x = np.maximum(np.random.default_rng(1).standard_normal((batch, channels, size, size)), 0).astype(np.float32)
    dense = _session(_model(channels, size, batch, 0, tile), threads)
    haste = _session(_model(channels, size, batch, hyperplanes, tile), threads)
    stats = haste.run(None, {"X": x})[1]
    for _ in range(3):
        dense.run(None, {"X": x})
        haste.run(None, {"X": x})
    times = {"dense": [], "haste": []}
    for _ in range(repeats):
        for name, sess in (("dense", dense), ("haste", haste)):
            start = clock()
            sess.run(None, {"X": x})
            times[name].append(clock() - start)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    return {"channels": channels, "size": size, "batch": batch, "hyperplanes": hyperplanes, "threads": threads,
            "tile": list(tile), "dense_ms": med["dense"], "haste_ms": med["haste"],
            "speedup": med["dense"] / med["haste"], "mac_cut": 1 - stats[1] / stats[0],
            "mean_merged_fraction": float(stats[5] / stats[6])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--hyperplanes", type=int, nargs="+", default=[64, 14, 8])
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU clock (with --threads 1: robust to a busy machine)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", action="store_true", help="also write benchmarks/results/layers_b<B>_t<T>.json")
    args = parser.parse_args(argv)
    clock = time.process_time if args.cpu_time else time.perf_counter
    rows = [measure(c, s, args.batch, L, args.threads, clock=clock) for c, s in SHAPES for L in args.hyperplanes]
    meta = {"onnxruntime": ort.__version__, "python": sys.version.split()[0], "machine": platform.machine(),
            "clock": "process CPU time" if args.cpu_time else "wall", "threads": args.threads, "batch": args.batch,
            "repeats": 30, "command": "python benchmarks/bench_layers.py " + " ".join(argv or sys.argv[1:])}
    if args.save:
        from pathlib import Path

        out = Path(__file__).resolve().parent / "results" / f"layers_b{args.batch}_t{args.threads}.json"
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, batch {args.batch}")
    ratio = "C'/C"
    print(f"{'C':>4} {'HxW':>5} {'L':>3} {ratio:>6} {'MACs cut':>8} {'Conv ms':>8} {'Haste ms':>8} {'speed-up':>8}")
    for r in rows:
        print(f"{r['channels']:>4} {r['size']:>5} {r['hyperplanes']:>3} {r['mean_merged_fraction']:>6.2f} "
              f"{r['mac_cut']:>8.1%} {r['dense_ms']:>8.3f} {r['haste_ms']:>8.3f} {r['speedup']:>8.2f}")


if __name__ == "__main__":
    main()
