#!/usr/bin/env python3
"""Do the synthetic probes rank layers as real images do? (the premise of `--target-cut`'s data-free default)

    python benchmarks/probe_check.py [MODEL] [--L 8] [--images 256] [--threads 2]

Each layer the default policy (plus strided convs) replaces is rewritten alone at
L hyperplanes and run on three probes: the two noises of
`haste_onnx.probe.images.synthetic_probe` (smooth, the default, and blocky, the
first) and the first Fashion-MNIST training images. Per layer it prints the
output disturbance and the net MACs saved on each; then, per noise, the
Pearson and Spearman correlations of disturbance per MAC saved (what the
allocation trades) with the training images', and its summed MACs saved over
theirs. Writes benchmarks/results/probe_check.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the shared models folder: $HASTE_ONNX_MODELS, else ../shared/models beside the repository
DEFAULT_MODEL = Path(os.environ.get("HASTE_ONNX_MODELS", ROOT.parent / "shared" / "models")) / "resnet18_fmnist.onnx"


def ranks(v: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(v)).astype(float)


def main(argv=None) -> int:
    from haste_onnx.measure.versions import versions
    from haste_onnx.model_io import load_model
    from haste_onnx.plan import HashingOptions, Policy, plan_model
    from haste_onnx.probe import ProbeOptions
    from haste_onnx.probe.images import probe_images
    from haste_onnx.probe.layers import probe_layers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    p.add_argument("--L", type=int, default=8)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe_check.json"))
    args = p.parse_args(argv)
    if not Path(args.model).is_file():
        p.error(f"model {args.model} not found: pass its path, or set HASTE_ONNX_MODELS to the shared models folder")
    model = load_model(args.model).model
    options, policy = HashingOptions(hyperplanes=args.L), Policy(allow_strided=True)
    table = {}
    probes_run = ("synthetic", "synthetic-blocky", "fashion-mnist-train")
    for probe in probes_run:
        images, _, _, _ = probe_images(model, ProbeOptions(source=probe, images=args.images))
        probes, _ = probe_layers(model, images, plan_model(model, options, policy), [args.L], args.threads)
        table[probe] = {q.node: q.choices[(args.L, tuple(options.tile))] for q in probes}
    nodes = list(table["fashion-mnist-train"])
    per_mac = {k: np.array([table[k][n][0] / max(table[k][n][1], 1.0) for n in nodes]) for k in table}
    real = per_mac["fashion-mnist-train"]
    real_saved = sum(table["fashion-mnist-train"][n][1] for n in nodes)
    result = {"model": args.model, "L": args.L, "images": args.images, "versions": versions(), "noises": {},
              "layers": [{"node": n, **{f"{k}_disturbance": table[k][n][0] for k in table},
                          **{f"{k}_net_saved_macs": table[k][n][1] for k in table}} for n in nodes]}
    for k in probes_run[:2]:
        a = per_mac[k]
        result["noises"][k] = {"pearson": float(np.corrcoef(a, real)[0, 1]),
                               "spearman": float(np.corrcoef(ranks(a), ranks(real))[0, 1]),
                               "saved_over_real": float(sum(table[k][n][1] for n in nodes) / real_saved)}
    print(f"{'layer':40s} " + " ".join(f"{k + ': disturbance, saved M':>40s}" for k in probes_run))
    for n in nodes:
        print(f"{n:40s} " + " ".join(f"{table[k][n][0]:24.5f} {table[k][n][1] / 1e6:15.2f}" for k in probes_run))
    for k, r in result["noises"].items():
        print(f"{k}: disturbance per MAC saved vs training images: Pearson {r['pearson']:.3f}, Spearman "
              f"{r['spearman']:.3f}; MACs saved {r['saved_over_real']:.2f}x theirs "
              f"({len(nodes)} layers, L={args.L}, {args.images} images each)")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
