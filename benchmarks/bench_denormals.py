"""How much slower HasteConv runs on subnormal (denormal) inputs than on normal ones.

Issue 7 asks for at most 2x. Runs one layer on normal inputs and on the same
inputs scaled into the subnormal range (exact powers of two, so the hashing
forms the same groups), alternating the two so that machine load hits both
alike, and reports the ratio of the medians (wall time, and CPU time of the
calling thread: with one intra-op thread onnxruntime computes on the caller,
so CPU time is robust on a busy machine).

    python benchmarks/bench_denormals.py [--rounds 41] [--channels 64] [--size 32] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import onnxruntime as ort  # noqa: E402

import haste_onnx  # noqa: E402
from op_cases import Case, haste_model, make_arrays  # noqa: E402



def inputs(x: np.ndarray):
    half = x.copy()
    half[:, ::2] *= np.float32(2.0 ** -130)  # every other channel subnormal
    return {"normal": x, "subnormal": (x * np.float32(2.0 ** -130)).astype(np.float32), "half subnormal": half}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--hyperplanes", type=int, default=14)
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    case = Case(batch=1, in_channels=args.channels, out_channels=args.channels, height=args.size, width=args.size,
                kernel=(3, 3), pads=(1, 1, 1, 1), hyperplanes=args.hyperplanes, bias=False)
    x, w, b, h = make_arrays(case)
    sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(1),
                                providers=["CPUExecutionProvider"])
    feeds = inputs(x)
    outs = {k: sess.run(None, {"X": v})[0] for k, v in feeds.items()}
    subnormal_out = float(np.mean((outs["subnormal"] != 0) & (np.abs(outs["subnormal"]) < np.finfo(np.float32).tiny)))
    wall = {k: [] for k in feeds}
    cpu = {k: [] for k in feeds}
    for _ in range(3):  # warm-up
        for v in feeds.values():
            sess.run(None, {"X": v})
    for r in range(args.rounds):
        order = list(feeds) if r % 2 == 0 else list(reversed(list(feeds)))  # alternate
        for k in order:
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(args.repeat):
                sess.run(None, {"X": feeds[k]})
            wall[k].append((time.perf_counter() - t0) / args.repeat)
            cpu[k].append((time.thread_time() - c0) / args.repeat)
    med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in feeds}
    result = {
        "layer": f"{args.channels}x{args.size}x{args.size}, 3x3, L={args.hyperplanes}, 1 thread",
        "median_ms": {k: {"wall": round(v[0] * 1e3, 3), "cpu": round(v[1] * 1e3, 3)} for k, v in med.items()},
        "ratio_subnormal_wall": round(med["subnormal"][0] / med["normal"][0], 3),
        "ratio_subnormal_cpu": round(med["subnormal"][1] / med["normal"][1], 3),
        "ratio_half_subnormal_cpu": round(med["half subnormal"][1] / med["normal"][1], 3),
        "fraction_of_outputs_subnormal": round(subnormal_out, 3),
        "rounds": args.rounds,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, (wt, ct) in med.items():
            print(f"{k:15s} median {wt * 1e3:8.3f} ms wall  {ct * 1e3:8.3f} ms cpu")
        print(f"subnormal / normal: {result['ratio_subnormal_wall']:.2f}x wall, {result['ratio_subnormal_cpu']:.2f}x cpu "
              f"(half subnormal {result['ratio_half_subnormal_cpu']:.2f}x cpu); "
              f"{subnormal_out:.0%} of the subnormal run's outputs are subnormal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
