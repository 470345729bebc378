#!/usr/bin/env python3
"""Does the synthetic probe rank layers as real images do? (the premise of `--target-cut`'s data-free default)

    python benchmarks/probe_check.py [MODEL] [--L 8] [--images 256] [--threads 2]

Each layer the default policy (plus strided convs) replaces is rewritten alone at
L hyperplanes and run on two probes: the synthetic noise of
`haste_onnx.allocate.synthetic_probe` and the first Fashion-MNIST training
images. Per layer it prints the output disturbance and the net MACs saved on
each, and the Pearson and Spearman correlations of disturbance per MAC saved
(what the allocation trades) between the two. Writes
benchmarks/results/probe_check.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "resnet18_fmnist.onnx"


def ranks(v: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(v)).astype(float)


def main(argv=None) -> int:
    from haste_onnx.allocate import probe_images, probe_layers
    from haste_onnx.evaluate import versions
    from haste_onnx.model_io import load_model
    from haste_onnx.policy import Policy
    from haste_onnx.rewrite.conv_to_haste import HashingOptions

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    p.add_argument("--L", type=int, default=8)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe_check.json"))
    args = p.parse_args(argv)
    model = load_model(args.model).model
    options, policy = HashingOptions(hyperplanes=args.L), Policy(allow_strided=True)
    table = {}
    for probe in ("synthetic", "fashion-mnist-train"):
        images, _, _ = probe_images(model, probe, args.images)
        probes, _ = probe_layers(model, images, options, policy, [args.L], args.threads)
        table[probe] = {q.node: q.choices[(args.L, tuple(options.tile))] for q in probes}
    nodes = list(table["synthetic"])
    per_mac = {k: np.array([table[k][n][0] / max(table[k][n][1], 1.0) for n in nodes]) for k in table}
    a, b = per_mac["synthetic"], per_mac["fashion-mnist-train"]
    result = {"model": args.model, "L": args.L, "images": args.images, "versions": versions(),
              "pearson": float(np.corrcoef(a, b)[0, 1]), "spearman": float(np.corrcoef(ranks(a), ranks(b))[0, 1]),
              "layers": [{"node": n, **{f"{k}_disturbance": table[k][n][0] for k in table},
                          **{f"{k}_net_saved_macs": table[k][n][1] for k in table}} for n in nodes]}
    print(f"{'layer':40s} {'synthetic: disturbance, saved M':>32s} {'train images: disturbance, saved M':>36s}")
    for n in nodes:
        s, r = table["synthetic"][n], table["fashion-mnist-train"][n]
        print(f"{n:40s} {s[0]:16.5f} {s[1] / 1e6:14.2f} {r[0]:18.5f} {r[1] / 1e6:16.2f}")
    print(f"disturbance per MAC saved, synthetic vs training images: Pearson {result['pearson']:.3f}, "
          f"Spearman {result['spearman']:.3f} ({len(nodes)} layers, L={args.L}, {args.images} images each)")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
