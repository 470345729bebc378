#!/usr/bin/env python3
"""Train a CNN on Fashion-MNIST and export it to ONNX for haste-onnx.

Models (all for 1x32x32 input: Fashion-MNIST padded 28 -> 32 with 0, then
normalised with mean 0.2860 / std 0.3530):

  resnet20   CIFAR-style ResNet-20: 3x3 stride-1 stem with 16 channels, stages
             16-32-64 of 3 BasicBlocks; shortcuts option B (1x1 stride-2 conv +
             BN, default: the exported graph is Conv/Relu/Add only) or A
             (parameter-free: subsample + zero channel padding, --shortcut A).
  resnet18   CIFAR-style ResNet-18: 3x3 stride-1 stem, widths 64-128-256-512,
             2-2-2-2 BasicBlocks, 1x1 conv + BN shortcuts (like
             shared/models/resnet18_fmnist.onnx).
  resnet34   as resnet18 with 3-4-6-3 BasicBlocks.
  vgg16_bn   VGG-16 with BatchNorm (13 convs, 5 max-pools, linear classifier).

Recipe: fixed seeds (python, numpy, torch) and a deterministic data order;
SGD nesterov, momentum 0.9, weight decay 5e-4, OneCycle (max lr 0.1),
batch 128, random horizontal flip + random shift of up to 2 px; optional
bf16 autocast. Export: BatchNorm folded into the Conv weights in torch, ONNX
opset 17, IR version 8, input 'input' [N,1,32,32] (dynamic N), output
'logits' [N,10]. The test accuracy in the JSON written beside the model is
measured with onnxruntime on the 10,000 Fashion-MNIST test images.

Example:
  python models/train.py resnet20 --epochs 3 --out models/resnet20_fmnist.onnx

Needs torch (``pip install torch==2.13.0``) and the Fashion-MNIST IDX files
(``haste-onnx fetch-data fashion-mnist``, or pass --fetch).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from haste_onnx import data as hdata  # noqa: E402

INPUT_HW = (32, 32)
NUM_CLASSES = 10


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

class ConvBN(nn.Module):
    """Conv2d (no bias) followed by BatchNorm2d; :func:`fold_batchnorm` merges them."""

    def __init__(self, cin, cout, k, stride=1, padding=None):
        super().__init__()
        if padding is None:
            padding = k // 2
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class ShortcutA(nn.Module):
    """Option-A shortcut of He et al.: subsample by 2, zero-pad the new channels."""

    def __init__(self, cin, cout):
        super().__init__()
        self.pad = cout - cin

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        lo = self.pad // 2
        return F.pad(x, (0, 0, 0, 0, lo, self.pad - lo))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, shortcut="B"):
        super().__init__()
        self.c1 = ConvBN(cin, cout, 3, stride)
        self.c2 = ConvBN(cout, cout, 3, 1)
        if stride != 1 or cin != cout:
            self.shortcut = ShortcutA(cin, cout) if shortcut == "A" else ConvBN(cin, cout, 1, stride, 0)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.c1(x))
        out = self.c2(out)
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks, widths, in_channels=1, num_classes=NUM_CLASSES, shortcut="B"):
        super().__init__()
        self.stem = ConvBN(in_channels, widths[0], 3, 1)
        layers, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stride = 1 if i == 0 else 2
            for j in range(n):
                layers.append(BasicBlock(cin, w, stride if j == 0 else 1, shortcut))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.layers(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, cfg=VGG16_CFG, in_channels=1, num_classes=NUM_CLASSES):
        super().__init__()
        layers, cin = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [ConvBN(cin, v, 3, 1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)  # 32x32 input -> 1x1 after 5 pools
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def resnet20(shortcut="B", **kw):
    return ResNet([3, 3, 3], [16, 32, 64], shortcut=shortcut, **kw)


def resnet18(shortcut="B", **kw):
    return ResNet([2, 2, 2, 2], [64, 128, 256, 512], shortcut=shortcut, **kw)


def resnet34(shortcut="B", **kw):
    return ResNet([3, 4, 6, 3], [64, 128, 256, 512], shortcut=shortcut, **kw)


def vgg16_bn(shortcut=None, **kw):
    return VGG(VGG16_CFG, **kw)


ARCHS = {"resnet20": resnet20, "resnet18": resnet18, "resnet34": resnet34, "vgg16_bn": vgg16_bn}

DESCRIPTIONS = {
    "resnet20": "CIFAR-style ResNet-20 (stem 3x3 stride 1, 16 channels; stages 16-32-64 of 3 BasicBlocks; "
                "shortcut option {sc}), input 1x32x32",
    "resnet18": "CIFAR-style ResNet-18 (stem 3x3 stride 1, widths 64-512, 2-2-2-2 BasicBlocks; "
                "shortcut option {sc}), input 1x32x32",
    "resnet34": "CIFAR-style ResNet-34 (stem 3x3 stride 1, widths 64-512, 3-4-6-3 BasicBlocks; "
                "shortcut option {sc}), input 1x32x32",
    "vgg16_bn": "VGG-16-BN (13 conv 3x3 + BN + ReLU, 5 max-pools, linear classifier), input 1x32x32",
}


def build_model(arch: str, shortcut: str | None = None) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(ARCHS)}")
    kw = {} if shortcut is None else {"shortcut": shortcut}
    return ARCHS[arch](**kw)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Eval-mode copy of ``model`` whose ConvBN modules are single Conv2d with bias."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if isinstance(m, ConvBN) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()
    return model


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def load_split(split, args):
    images, labels = hdata.load_fashion_mnist(split, path=args.data_dir, cache_dir=args.cache_dir,
                                              fetch=args.fetch)
    x = hdata.preprocess_fashion_mnist(images, INPUT_HW)
    return torch.from_numpy(x), torch.from_numpy(labels)


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int, flip: bool, bg: float) -> torch.Tensor:
    """Random horizontal flip and random shift (<= max_shift px, background fill), per sample."""
    B, C, H, W = x.shape
    if flip:
        mask = torch.rand(B, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    if max_shift > 0:
        s = max_shift
        xp = F.pad(x, (s, s, s, s), value=bg)
        dy = torch.randint(0, 2 * s + 1, (B,), generator=gen)
        dx = torch.randint(0, 2 * s + 1, (B,), generator=gen)
        rows = (torch.arange(H)[None, :] + dy[:, None])  # [B,H]
        cols = (torch.arange(W)[None, :] + dx[:, None])  # [B,W]
        b = torch.arange(B)[:, None, None]
        xp = xp.permute(0, 2, 3, 1)  # [B,H',W',C]
        x = xp[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    return x


# --------------------------------------------------------------------------
# Export and evaluation
# --------------------------------------------------------------------------

def export_onnx(model: nn.Module, out: Path, opset: int = 17, ir_version: int = 8) -> None:
    import onnx

    folded = fold_batchnorm(model)
    dummy = torch.zeros(1, 1, *INPUT_HW)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(
        folded, (dummy,), str(tmp), dynamo=False, opset_version=opset,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        do_constant_folding=True)
    m = onnx.load(str(tmp))
    tmp.unlink()
    m.ir_version = ir_version
    m.producer_name = "haste-onnx models/train.py"
    bad = [n.op_type for n in m.graph.node if n.op_type == "BatchNormalization"]
    if bad:
        raise RuntimeError(f"exported graph still has {len(bad)} BatchNormalization nodes")
    onnx.checker.check_model(m)
    onnx.save(m, str(out))


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, batch: int = 500, threads: int = 2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    correct = 0
    logits = []
    for i in range(0, len(x), batch):
        out = sess.run(["logits"], {"input": x[i:i + batch]})[0]
        logits.append(out)
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / len(x), np.concatenate(logits)


@torch.no_grad()
def torch_accuracy(model, x, y, batch=500):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / len(x)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", choices=sorted(ARCHS))
    p.add_argument("--epochs", type=float, default=3.0, help="may be fractional (default 3)")
    p.add_argument("--out", type=Path, default=None, help="ONNX path (default models/<arch>_fmnist.onnx)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="OneCycle max lr")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shortcut", choices=["A", "B"], default=None,
                   help="ResNet shortcut: B (1x1 conv + BN, default) or A (parameter-free subsample + zero pad)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for training (weights stay fp32)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--max-shift", type=int, default=2, help="random shift in px (0 disables)")
    p.add_argument("--no-flip", action="store_true", help="disable random horizontal flips")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--limit-test", type=int, default=None, help="evaluate only the first N test images")
    p.add_argument("--data-dir", default=None, help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--cache-dir", default=None, help="haste-onnx cache (default ~/.cache/haste-onnx)")
    p.add_argument("--fetch", action="store_true", help="download Fashion-MNIST (Debian package) if missing")
    p.add_argument("--log-every", type=int, default=50)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    command = "python models/train.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    torch.set_num_threads(args.threads)
    gen = seed_everything(args.seed)
    shortcut = args.shortcut or "B"
    out = args.out or (_REPO / "models" / f"{args.arch}_fmnist.onnx")

    xtr, ytr = load_split("train", args)
    xte, yte = load_split("test", args)
    if args.limit_train:
        xtr, ytr = xtr[:args.limit_train], ytr[:args.limit_train]
    if args.limit_test:
        xte, yte = xte[:args.limit_test], yte[:args.limit_test]
    bg = float((0.0 - hdata.FASHION_MNIST_MEAN) / hdata.FASHION_MNIST_STD)

    model = build_model(args.arch, None if args.arch == "vgg16_bn" else shortcut)
    n_params = sum(p.numel() for p in model.parameters())
    decay, no_decay = [], []
    for name, prm in model.named_parameters():
        (no_decay if prm.ndim <= 1 else decay).append(prm)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.wd},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=args.momentum, nesterov=True)
    n = len(xtr)
    per_epoch = math.ceil(n / args.batch_size)
    total_steps = max(1, int(round(args.epochs * per_epoch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps)
    print(f"{args.arch} (shortcut {shortcut}): {n_params:,} parameters; {n} train images, "
          f"{total_steps} steps of {args.batch_size} ({args.epochs} epochs); bf16={args.bf16}; "
          f"threads={torch.get_num_threads()}", flush=True)

    step, t0 = 0, time.time()
    run_loss = run_correct = run_n = 0.0
    model.train()
    while step < total_steps:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, args.batch_size):
            if step >= total_steps:
                break
            idx = perm[i:i + args.batch_size]
            xb = augment(xtr[idx], gen, args.max_shift, not args.no_flip, bg)
            yb = ytr[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            run_loss += float(loss.detach()) * len(yb)
            run_correct += float((logits.argmax(1) == yb).sum())
            run_n += len(yb)
            if step % args.log_every == 0 or step == total_steps:
                el = time.time() - t0
                print(f"step {step}/{total_steps} epoch {step / per_epoch:.2f} loss {run_loss / run_n:.4f} "
                      f"train acc {100 * run_correct / run_n:.2f}% lr {sched.get_last_lr()[0]:.4f} "
                      f"{el:.0f}s (eta {el / step * (total_steps - step):.0f}s)", flush=True)
                run_loss = run_correct = run_n = 0.0
    train_seconds = time.time() - t0

    torch_acc = torch_accuracy(model, xte, yte)
    print(f"torch test accuracy {torch_acc:.2f}% ({len(xte)} images)", flush=True)
    export_onnx(model, out)
    ort_acc, _ = onnx_accuracy(out, xte.numpy(), yte.numpy(), threads=args.threads)
    print(f"onnxruntime test accuracy {ort_acc:.2f}% -> {out} ({out.stat().st_size:,} bytes)", flush=True)

    meta = {
        "model": DESCRIPTIONS[args.arch].format(sc=shortcut),
        "arch": args.arch,
        "parameters": n_params,
        "data": "Fashion-MNIST, 28x28 padded to 32x32 with the background value, normalised mean 0.2860 std 0.3530",
        "test_images": len(xte),
        "train_images": n,
        "test_accuracy_pct": round(ort_acc, 2),
        "onnxruntime_test_accuracy_pct": round(ort_acc, 2),
        "torch_test_accuracy_pct": round(torch_acc, 2),
        "epochs": args.epochs,
        "steps": total_steps,
        "train_seconds": train_seconds,
        "threads": args.threads,
        "precision": ("bf16 autocast for training, fp32 weights and export" if args.bf16
                      else "fp32 training and export"),
        "optimizer": (f"SGD nesterov momentum {args.momentum}, wd {args.wd} (not on BN/bias), OneCycle max lr "
                      f"{args.lr}, batch {args.batch_size}"
                      + ("" if args.no_flip else ", flip") + (f" + shift<={args.max_shift}px" if args.max_shift else "")),
        "seed": args.seed,
        "command": command,
        "torch_version": torch.__version__,
        "sha256": sha256(out),
        "size_bytes": out.stat().st_size,
        "onnx": "opset 17, IR 8, BatchNorm folded into Conv in torch before export; input 'input' "
                "[N,1,32,32] float32, output 'logits' [N,10]",
        "preprocess": "x = pixel/255; pad 28x28 -> 32x32 with 0 (2 px each side); x = (x - 0.2860) / 0.3530 "
                      "(haste_onnx.data.preprocess_fashion_mnist)",
        "classes": list(hdata.FASHION_MNIST_CLASSES),
    }
    js = out.with_suffix(".json")
    js.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {js}", flush=True)
    return meta


if __name__ == "__main__":
    main()
