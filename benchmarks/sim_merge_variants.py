#!/usr/bin/env python3
"""Single-layer numpy simulation of grouping/merging variants, before building them into the kernel.

    python benchmarks/sim_merge_variants.py [--layers layers.1/conv1/Conv layers.5/conv1/Conv] [--images 20] [--seeds 3]

For a 3x3 stride-1 conv of the ResNet-18 of record, on its real input
activations (the first Fashion-MNIST training images), every 4x4 output tile's
input patch is hashed as HasteConv does (sparse ternary hyperplanes, sparsity
2/3, seed 0, centred across channels), bucket members are merged with
merge="project", and the relative error of the layer's output
||conv(W, merged patch) - conv(W, patch)|| / ||conv(W, patch)|| is reported
against C'/C. The variants:

- verify (tau > 0): a member whose cosine with its bucket's mean is below
  sqrt(tau) stays alone (LSH as candidate generation, then a check);
- dc: each channel's patch mean is removed before hashing and merging and
  added back exactly (a rank-1 correction per channel);
- smooth hyperplanes: ternary hyperplanes shaped like smooth feature maps
  (signs of a 1/f^2 random field, same number of non-zeros);
- rank-1 representative: members projected on their bucket's top singular
  vector instead of its mean;
- the 20% of input channels with the largest filter slices never merge
  (a static, weight-only choice).

A variant is worth building only if it gives a lower error at the same C'/C.
Results: docs/ablations.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the shared models folder: $HASTE_ONNX_MODELS, else ../shared/models beside the repository
DEFAULT_MODEL = Path(os.environ.get("HASTE_ONNX_MODELS", ROOT.parent / "shared" / "models")) / "resnet18_fmnist.onnx"


def layer_inputs(model_path: str, names, count: int):
    """{conv node: (its input activations [N, C, H, W], weight)} for the first `count` training images."""
    import onnx
    from onnx import helper, numpy_helper

    from haste_onnx import data as hd
    from haste_onnx.runtime import inference_session

    model = onnx.load(model_path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and any(n.name.endswith(s) for s in names)]
    for n in convs:
        model.graph.output.append(helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None))
    x, _ = hd.load_fashion_mnist("train")
    x = hd.preprocess_fashion_mnist(x[:count])
    session = inference_session(model, threads=2)
    acts = session.run([n.input[0] for n in convs], {session.get_inputs()[0].name: x})
    return {n.name: (a, inits[n.input[1]]) for n, a in zip(convs, acts)}


def patches(a: np.ndarray) -> np.ndarray:
    """[tiles * N, C, 36]: the 6x6 input patch of every 4x4 output tile (3x3 kernel, stride 1, pad 1)."""
    n, c, h, w = a.shape
    p = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return np.concatenate([p[:, :, y:y + 6, x:x + 6].reshape(n, c, 36)
                           for y in range(0, h, 4) for x in range(0, w, 4)])


def smooth_hyperplanes(num: int, side: int, sparsity: float, seed: int) -> np.ndarray:
    """Ternary hyperplanes that are spatially smooth: the signs of a 1/f^2 random field over the side x side
    patch, kept where its magnitude is in the top (1 - sparsity) share (the same count of non-zeros as
    draw_hyperplanes, so the same hashing cost)."""
    rng = np.random.default_rng(seed)
    freq = np.sqrt(np.fft.fftfreq(side)[:, None] ** 2 + np.fft.fftfreq(side)[None, :] ** 2)
    freq[0, 0] = np.inf  # no constant component: centring removes it anyway
    field = np.real(np.fft.ifft2((rng.standard_normal((num, side, side))
                                  + 1j * rng.standard_normal((num, side, side))) / freq ** 2)).reshape(num, -1)
    keep = int(round((1 - sparsity) * side * side))
    out = np.zeros_like(field)
    for row, values in zip(out, field):
        top = np.argsort(-np.abs(values))[:keep]
        row[top] = np.sign(values[top])
    return out.astype(np.float32)


def simulate(P: np.ndarray, W: np.ndarray, L: int, tau: float = 0.0, dc: bool = False, seed: int = 0,
             planes: str = "random", representative: str = "mean", protect=()):
    """(C'/C, relative output error) of one variant.

    planes: "random" (draw_hyperplanes, as the op) or "smooth" (`smooth_hyperplanes`); representative: what
    the members are projected on, "mean" (as the op) or "svd" (the bucket's best rank-1 direction);
    protect: channels that never merge.
    """
    from haste_onnx.op.hyperplanes import draw_hyperplanes

    T, C, d = P.shape
    original = P
    if dc:
        means = P.mean(2, keepdims=True)
        P = P - means
    H = smooth_hyperplanes(L, 6, 0.6667, seed) if planes == "smooth" else draw_hyperplanes(L, d, 0.6667, seed)
    codes = (((P - P.mean(1, keepdims=True)) @ H.T > 0) @ (1 << np.arange(L))).astype(np.int64)
    codes[:, list(protect)] = -1 - np.arange(len(protect))[None, :]  # a bucket of its own each
    R = P.copy()
    kept = 0
    for t in range(T):
        _, bucket = np.unique(codes[t], return_inverse=True)
        for b in range(bucket.max() + 1):
            members = np.nonzero(bucket == b)[0]
            if len(members) > 1 and tau > 0:
                mean = P[t, members].mean(0)
                dots, norms = P[t, members] @ mean, (P[t, members] ** 2).sum(1)
                ok = dots * dots >= tau * norms * (mean @ mean)
                kept += int((~ok).sum())
                members = members[ok]
            if len(members) == 0:
                continue
            kept += 1
            if len(members) == 1:
                continue
            X = P[t, members]
            rep = np.linalg.svd(X, full_matrices=False)[2][0] if representative == "svd" else X.mean(0)
            norm = rep @ rep
            scales = X @ rep / norm if norm > 0 else np.zeros(len(members))
            R[t, members] = scales[:, None] * rep[None]
    if dc:
        R = R + means
    diff, ref = (R - original).reshape(T, C, 6, 6), original.reshape(T, C, 6, 6)

    def conv(Z):
        out = np.zeros((T, W.shape[0], 4, 4))
        for ky in range(3):
            for kx in range(3):
                out += np.einsum("oc,tcyx->toyx", W[:, :, ky, kx], Z[:, :, ky:ky + 4, kx:kx + 4], optimize=True)
        return out

    return kept / (T * C), float(np.linalg.norm(conv(diff)) / np.linalg.norm(conv(ref)))


def variants(W: np.ndarray):
    """(label, keyword arguments of `simulate`) of every variant."""
    norms = np.sqrt((W ** 2).sum(axis=(0, 2, 3)))
    top = np.argsort(-norms)[:int(round(0.2 * len(norms)))]
    return [("LSH", {}), ("LSH + verify tau=0.8", {"tau": 0.8}), ("LSH + dc", {"dc": True}),
            ("smooth hyperplanes", {"planes": "smooth"}), ("rank-1 representative", {"representative": "svd"}),
            ("largest 20% filters alone", {"protect": top})]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--layers", nargs="+", default=["layers.1/conv1/Conv", "layers.5/conv1/Conv"])
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--seeds", type=int, default=1, help="hyperplane seeds to average over (default 1: seed 0)")
    args = p.parse_args(argv)
    if not Path(args.model).is_file():
        p.error(f"model {args.model} not found: pass its path, or set HASTE_ONNX_MODELS to the shared models folder")
    for name, (a, W) in layer_inputs(args.model, args.layers, args.images).items():
        P = patches(a)
        print(f"{name}: input {a.shape}, {P.shape[0]} tiles", flush=True)
        for L in (4, 6, 8, 10, 12):
            for label, kw in variants(W):
                runs = [simulate(P, W, L, seed=s, **kw) for s in range(args.seeds)]
                ratio, err = np.mean([r[0] for r in runs]), np.mean([r[1] for r in runs])
                print(f"  L={L:2d} {label:26s} C'/C={ratio:.3f} relative error={err:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
