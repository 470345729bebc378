"""Single-node HasteConv models and randomized configurations for the op tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from haste_onnx.op import ConvAttrs, draw_hyperplanes, patch_size
from haste_onnx.op.reference import haste_conv

IR_VERSION = 8
OPSET = 17


@dataclass
class Case:
    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: Tuple[int, int]
    strides: Tuple[int, int] = (1, 1)
    dilations: Tuple[int, int] = (1, 1)
    pads: Tuple[int, int, int, int] = (0, 0, 0, 0)
    auto_pad: str = "NOTSET"
    group: int = 1
    bias: bool = True
    tile: Tuple[int, int] = (4, 4)
    hyperplanes: int = 8
    sparsity: float = 2 / 3
    centering: bool = True
    magnitude_split: bool = False
    merge: str = "mean"
    seed: int = 0
    repeated_channels: int = 0  # how many channels are copies of others
    attrs: dict = field(default_factory=dict)

    def conv_attrs(self) -> dict:
        attrs = dict(kernel_shape=list(self.kernel), strides=list(self.strides), dilations=list(self.dilations),
                     group=self.group)
        if self.auto_pad == "NOTSET":
            attrs["pads"] = list(self.pads)
        else:
            attrs["auto_pad"] = self.auto_pad
        return attrs

    def conv(self) -> ConvAttrs:
        return ConvAttrs.from_dict(self.conv_attrs())


def make_arrays(case: Case):
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal((case.batch, case.in_channels, case.height, case.width)).astype(np.float32)
    if case.repeated_channels:
        # Exact copies inside each conv group, so they can merge.
        per_group = case.in_channels // case.group
        for g in range(case.group):
            base = g * per_group
            for i in range(min(case.repeated_channels, per_group - 1)):
                src = base + int(rng.integers(0, per_group - 1 - i))
                x[:, base + per_group - 1 - i] = x[:, src]
    w = (rng.standard_normal((case.out_channels, case.in_channels // case.group) + case.kernel) /
         np.sqrt(case.in_channels // case.group * case.kernel[0] * case.kernel[1])).astype(np.float32)
    b = rng.standard_normal(case.out_channels).astype(np.float32) if case.bias else None
    ph, pw = patch_size(case.kernel, case.strides, case.dilations, case.tile)
    h = draw_hyperplanes(case.hyperplanes, ph * pw, case.sparsity, case.seed)
    return x, w, b, h


def haste_model(case: Case, w, b, h, x_shape=None) -> onnx.ModelProto:
    """One HasteConv node with W, B and the hyperplanes as initializers."""
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(h, "hyperplanes")]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "B"))
    node = helper.make_node("HasteConv", ["X", "W", "B" if b is not None else "", "hyperplanes"], ["Y"],
                            domain="haste", name="haste_node", tile=list(case.tile),
                            centering=int(case.centering), magnitude_split=int(case.magnitude_split),
                            merge=case.merge,
                            seed=case.seed, sparsity=float(case.sparsity),
                            **case.conv_attrs())
    x_shape = x_shape or [None, case.in_channels, None, None]
    graph = helper.make_graph([node], "haste_case", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [None] * 4)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("haste", 1)],
                             ir_version=IR_VERSION)


def conv_model(case: Case, w, b) -> onnx.ModelProto:
    """The plain Conv that the HasteConv replaces."""
    inits = [numpy_helper.from_array(w, "W")] + ([numpy_helper.from_array(b, "B")] if b is not None else [])
    node = helper.make_node("Conv", ["X", "W"] + (["B"] if b is not None else []), ["Y"], **case.conv_attrs())
    graph = helper.make_graph([node], "conv_case", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def reference(case: Case, x, w, b, h) -> np.ndarray:
    return haste_conv(x, w, b, h, case.conv(), case.tile, case.centering, magnitude_split=case.magnitude_split,
                      merge=case.merge)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.size == 0:
        return 0.0
    scale = max(float(np.abs(expected).max()), 1e-6)
    return float(np.abs(actual.astype(np.float64) - expected).max()) / scale


def random_case(rng: np.random.Generator, index: int, max_channels: int = 256) -> Case:
    """A random but valid configuration; larger channel counts come with small images."""
    kernel = int(rng.choice([1, 3, 5]))
    kernel_w = kernel if rng.random() < 0.85 else int(rng.choice([1, 3, 5]))
    dil = (int(rng.choice([1, 2])), int(rng.choice([1, 2])))
    group = int(rng.choice([1, 1, 1, 2, 4]))
    wide = rng.random() < 0.3
    in_per_group = int(rng.integers(1, (max_channels if wide else 48) // group + 1))
    out_per_group = int(rng.integers(1, (max_channels if wide else 48) // group + 1))
    size_cap = 9 if wide else 19
    eff = [(kernel - 1) * dil[0] + 1, (kernel_w - 1) * dil[1] + 1]
    auto_pad = str(rng.choice(["NOTSET", "NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    height = int(rng.integers(max(1, eff[0] if auto_pad == "VALID" else 1), max(eff[0], size_cap) + 1))
    width = int(rng.integers(max(1, eff[1] if auto_pad == "VALID" else 1), max(eff[1], size_cap) + 1))
    if rng.random() < 0.5:
        pads = tuple(int(p) for p in rng.integers(0, 3, size=4))  # asymmetric
    else:
        pads = (eff[0] // 2, eff[1] // 2, eff[0] // 2, eff[1] // 2)
    # NOTSET needs the padded input to hold the dilated kernel.
    if auto_pad == "NOTSET":
        pads = (pads[0], pads[1], max(pads[2], eff[0] - height - pads[0]), max(pads[3], eff[1] - width - pads[1]))
    tile = (int(rng.choice([1, 2, 3, 4, 5, 8])), int(rng.choice([1, 2, 3, 4, 5, 8])))
    return Case(
        batch=int(rng.choice([1, 1, 2, 3])), in_channels=in_per_group * group, out_channels=out_per_group * group,
        height=height, width=width, kernel=(kernel, kernel_w), strides=(int(rng.choice([1, 2])), int(rng.choice([1, 2]))),
        dilations=dil, pads=pads, auto_pad=auto_pad, group=group, bias=bool(rng.random() < 0.7), tile=tile,
        hyperplanes=int(rng.integers(1, 65)), sparsity=float(rng.choice([0.0, 0.5, 2 / 3])),
        centering=bool(rng.random() < 0.8), magnitude_split=bool(rng.random() < 0.3),
        merge="project" if rng.random() < 0.3 else "mean", seed=index,
        repeated_channels=int(rng.integers(0, max(1, in_per_group // 2) + 1)) if rng.random() < 0.4 else 0)
