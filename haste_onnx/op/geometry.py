"""Conv geometry shared by the schema, the reference and the rewriter.

Follows the ONNX Conv specification (opset 11 and later) for `auto_pad`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

DOMAIN = "haste"
OP_TYPE = "HasteConv"
OPSET_VERSION = 1
DEFAULT_TILE = (4, 4)
MAX_HYPERPLANES = 64


@dataclass(frozen=True)
class ConvAttrs:
    """The Conv attributes of a 2-D convolution, with ONNX's defaults filled in."""

    kernel_shape: Tuple[int, int]
    strides: Tuple[int, int] = (1, 1)
    dilations: Tuple[int, int] = (1, 1)
    pads: Tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    auto_pad: str = "NOTSET"
    group: int = 1

    @classmethod
    def from_dict(cls, attrs: dict, weight_shape: Optional[Sequence[int]] = None) -> "ConvAttrs":
        kernel = attrs.get("kernel_shape")
        if kernel is None:
            if weight_shape is None:
                raise ValueError("kernel_shape is missing and the weight shape is unknown")
            kernel = weight_shape[2:]
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if isinstance(auto_pad, bytes):
            auto_pad = auto_pad.decode()
        return cls(
            kernel_shape=_pair(kernel, "kernel_shape"),
            strides=_pair(attrs.get("strides", (1, 1)), "strides"),
            dilations=_pair(attrs.get("dilations", (1, 1)), "dilations"),
            pads=tuple(int(p) for p in attrs.get("pads", (0, 0, 0, 0))),
            auto_pad=auto_pad,
            group=int(attrs.get("group", 1)),
        )

    def effective_kernel(self) -> Tuple[int, int]:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_shape, self.dilations))

    def resolve_pads(self, in_hw: Sequence[int]) -> Tuple[int, int, int, int]:
        """(top, left, bottom, right) padding for an input of spatial size in_hw."""
        if self.auto_pad in ("NOTSET", ""):
            return self.pads  # type: ignore[return-value]
        if self.auto_pad == "VALID":
            return (0, 0, 0, 0)
        if self.auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
            raise ValueError(f"unknown auto_pad {self.auto_pad!r}")
        begin, end = [], []
        for size, s, k in zip(in_hw, self.strides, self.effective_kernel()):
            out = -(-size // s)
            total = max(0, (out - 1) * s + k - size)
            small, big = total // 2, total - total // 2
            if self.auto_pad == "SAME_UPPER":
                begin.append(small)
                end.append(big)
            else:
                begin.append(big)
                end.append(small)
        return (begin[0], begin[1], end[0], end[1])

    def output_hw(self, in_hw: Sequence[int]) -> Tuple[int, int]:
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            return tuple(-(-size // s) for size, s in zip(in_hw, self.strides))  # type: ignore[return-value]
        top, left, bottom, right = self.resolve_pads(in_hw)
        out = []
        for size, s, k, pb, pe in zip(in_hw, self.strides, self.effective_kernel(), (top, left), (bottom, right)):
            out.append((size + pb + pe - k) // s + 1)
        return (out[0], out[1])


def patch_size(kernel_shape: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
               tile: Sequence[int]) -> Tuple[int, int]:
    """Side of the input patch that a tile of outputs reads: (t-1)*s + (k-1)*d + 1."""
    return tuple((t - 1) * s + (k - 1) * d + 1 for t, s, k, d in zip(tile, strides, kernel_shape, dilations))  # type: ignore[return-value]


def _pair(value, name: str) -> Tuple[int, int]:
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} must have 2 values for a 2-D convolution, got {list(value)}")
    return value  # type: ignore[return-value]
