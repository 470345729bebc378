"""HasteConv on CUDA (the library's C entry point) against cuDNN (PyTorch conv2d), per layer shape.

ResNet-18's 3x3 stride-1 layer shapes at 32x32 input (64@32, 128@16, 256@8, 512@4) and at 224x224 (64@56,
128@28, 256@14, 512@7), batch 1, 8 and 64, cuDNN with TF32 off and on. The inputs are synthetic: each
channel is one of C/4 base channels (randomly signed and scaled copies plus a little noise, so that about half
of the channels merge at L=12), since the shared models' real activations do not travel to the GPU machine;
the measured share of MACs left (haste_macs / dense_macs from the stats output) is printed beside each time.

Usage (from the repository root, op library built with CUDA): python3 benchmarks/cuda_bench.py [--quick]
  [--json FILE] [--markdown FILE]. Times are medians of CUDA-event timings after warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from cuda_entry import Plan  # noqa: E402
from haste_onnx.op import draw_hyperplanes, patch_size  # noqa: E402
from haste_onnx.op.stats import STATS_SIZE  # noqa: E402

SHAPES = {32: [(64, 32), (128, 16), (256, 8), (512, 4)], 224: [(64, 56), (128, 28), (256, 14), (512, 7)]}


def timed(fn, reps: int) -> float:
    """Median milliseconds of fn() over reps, after warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def synthetic_input(batch, channels, size, rng):
    base = rng.standard_normal((batch, max(1, channels // 4), size, size)).astype(np.float32)
    pick = rng.integers(0, base.shape[1], channels)
    scale = rng.uniform(0.5, 2.0, channels).astype(np.float32) * rng.choice([-1, 1], channels)
    x = base[:, pick] * scale[None, :, None, None]
    return x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--hyperplanes", type=int, default=12)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    reps = 10 if args.quick else 30
    torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    rows = []
    for res, shapes in SHAPES.items():
        for channels, size in shapes:
            for batch in (1, 8, 64):
                x_np = synthetic_input(batch, channels, size, rng)
                w_np = (rng.standard_normal((channels, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
                ph, pw = patch_size((3, 3), (1, 1), (1, 1), (4, 4))
                h_np = draw_hyperplanes(args.hyperplanes, ph * pw, 2 / 3, 0)
                x, w, h = (torch.from_numpy(a).cuda() for a in (x_np, w_np, h_np))
                b = torch.zeros(channels, device="cuda")
                plan = Plan(x.shape, w.shape, h.shape, pads=(1, 1, 1, 1))
                y = torch.empty(plan.y_shape, device="cuda")
                ws = torch.empty(max(1, plan.workspace_bytes), dtype=torch.uint8, device="cuda")
                stats = torch.zeros(STATS_SIZE, dtype=torch.int64, device="cuda")
                plan.run(x, w, b, h, y=y, workspace=ws, stats=stats)
                torch.cuda.synchronize()
                s = stats.cpu().numpy()
                kept = float(s[1]) / float(s[0]) if s[0] else 1.0
                haste_ms = timed(lambda: plan.run(x, w, b, h, y=y, workspace=ws), reps)
                row = dict(input=res, channels=channels, size=size, batch=batch, macs_kept=round(kept, 3),
                           haste_ms=haste_ms)
                for tf32 in (False, True):
                    torch.backends.cudnn.allow_tf32 = tf32
                    ms = timed(lambda: torch.nn.functional.conv2d(x, w, b, padding=1), reps)
                    row["cudnn_tf32_ms" if tf32 else "cudnn_fp32_ms"] = ms
                row["ratio_vs_fp32"] = row["cudnn_fp32_ms"] / haste_ms
                row["ratio_vs_tf32"] = row["cudnn_tf32_ms"] / haste_ms
                rows.append(row)
                print(json.dumps(row), flush=True)
                del x, w, h, y, ws
                torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"HasteConv CUDA vs cuDNN ({torch.cuda.get_device_name()}, torch {torch.__version__}, "
                    f"L={args.hyperplanes}, tile 4x4; ratio > 1: HasteConv faster)\n\n")
            f.write("| input | C | HxW | batch | MACs kept | HasteConv ms | cuDNN fp32 ms | ratio | cuDNN TF32 ms | ratio |\n")
            f.write("|---|---|---|---|---|---|---|---|---|---|\n")
            for r in rows:
                f.write(f"| {r['input']} | {r['channels']} | {r['size']} | {r['batch']} | {r['macs_kept']} | "
                        f"{r['haste_ms']:.3f} | {r['cudnn_fp32_ms']:.3f} | {r['ratio_vs_fp32']:.2f} | "
                        f"{r['cudnn_tf32_ms']:.3f} | {r['ratio_vs_tf32']:.2f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
