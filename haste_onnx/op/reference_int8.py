"""The numpy reference of an int8 HasteConv: specified (docs/op_spec.md, "int8 HasteConv"), not shipped.

Operands as onnxruntime's QLinearConv: X uint8 with (x_scale, x_zero), W int8 symmetric per output channel
(w_scale[o], zero 0), B int32 in units of x_scale * w_scale[o], Y uint8 with (y_scale, y_zero); Z, the
fused residual, uint8 with (z_scale, z_zero). Per image, conv group and output tile (docs/int8_haste.md):

1. The patch of `xi = X - x_zero` (int32; positions outside the image read 0, i.e. x_zero).
2. Centring without division: `v_c = C_g * xi_c - sum_c xi_c` (exact integers; the same signs as
   `xi_c - mean`), hashing `p = sum_j h[l, j] * v_c[j]` in int64, bit l = `p > 0`. Exact, so every
   implementation forms the same groups.
3. Groups: equal codes (no magnitude split).
4. Merged input: `u_g = round_half_even(sum_{c in g} xi_c / n_g)` (int, fits uint8 after + x_zero).
5. Merged filter of group g, output channel o: `sum_c s_c * W[o, c]` (s_c = 1 with "mean", the
   least-squares scale with "project"), then represented as
   - "int16": the exact integer sum of the int8 slices (only "mean"; |sum| <= 128 n_g, so int16 holds it
     for groups of up to 255 members), multiplier r_o = 1;
   - "requant": re-quantized per tile and output channel to int8: r_o = max_{g,k} |W'[o, g, k]| / 127,
     q = round_half_even(W' / r_o).
6. `acc[o] = sum_{g,k} q[o, g, k] * u_g[...]` (int32: the valid convolution of the merged patch).
7. `y = x_scale * w_scale[o] * (r_o * acc + B[o])`, plus `z_scale * (Z - z_zero)`, the activation, then
   `Y = clip(round_half_even(y / y_scale) + y_zero, 0, 255)`.

With every channel alone in its group (all codes distinct) and "int16", this is exactly the quantized
convolution (the reference `quantized_conv`); "requant" then differs only where max |W[o]| < 127.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .geometry import DEFAULT_TILE, ConvAttrs
from .reference import extract_patches, group_channels, member_scales, valid_conv

REPRESENTATIONS = ("int16", "requant")


def int_codes(vectors: np.ndarray, hyperplanes: np.ndarray, centering: bool = True) -> np.ndarray:
    """Codes of integer channel vectors [..., C, d] (step 2), uint64 [..., C]; exact."""
    x = vectors.astype(np.int64)
    if centering:
        x = x.shape[-2] * x - x.sum(axis=-2, keepdims=True)
    projections = x @ hyperplanes.astype(np.int64).T  # exact: entries are -1, 0, +1
    bits = (projections > 0).astype(np.uint64)
    weights = np.left_shift(np.uint64(1), np.arange(hyperplanes.shape[0], dtype=np.uint64))
    return (bits * weights).sum(axis=-1, dtype=np.uint64)


def _requantize(y: np.ndarray, y_scale: float, y_zero: int) -> np.ndarray:
    return np.clip(np.rint(y / y_scale) + y_zero, 0, 255).astype(np.uint8)


def _float_output(acc, x_scale, w_scale, bias, z, z_scale, z_zero, clamp, outs):
    y = acc * (x_scale * w_scale[outs])[:, None, None]
    if bias is not None:
        y = y + (bias[outs].astype(np.float64) * x_scale * w_scale[outs])[:, None, None]
    if z is not None:
        y = y + z_scale * (z[outs].astype(np.float64) - z_zero)
    if clamp is not None:
        y = np.clip(y, clamp[0], clamp[1])
    return y


def haste_conv_int8(x: np.ndarray, x_scale: float, x_zero: int, w: np.ndarray, w_scale: np.ndarray,
                    bias: Optional[np.ndarray], hyperplanes: np.ndarray, y_scale: float, y_zero: int,
                    conv: ConvAttrs, tile: Sequence[int] = DEFAULT_TILE, merge: str = "mean",
                    representation: str = "requant", centering: bool = True,
                    z: Optional[np.ndarray] = None, z_scale: float = 1.0, z_zero: int = 0,
                    clamp: Optional[Tuple[float, float]] = None, dequantized: bool = False) -> np.ndarray:
    """int8 HasteConv of x uint8 [N, C, H, W] with w int8 [O, C/group, kH, kW]; uint8 [N, O, H', W'] (or, with
    `dequantized`, the float64 y of step 7 before the output's quantization)."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    if representation == "int16" and merge != "mean":
        raise ValueError('int16 merged filters are exact sums: only with merge="mean"')
    xi = x.astype(np.int32) - int(x_zero)
    w_scale = np.asarray(w_scale, np.float64).reshape(-1)
    batch, _, height, width = x.shape
    out_channels, cg = w.shape[:2]
    per_group = out_channels // conv.group
    out_h, out_w = conv.output_hw((height, width))
    th, tw = tile
    wq = w.astype(np.int64)
    y = np.zeros((batch, out_channels, out_h, out_w), np.float64)
    for n in range(batch):
        patches = extract_patches(xi[n].astype(np.float32), conv, tile).astype(np.int64)  # exact: |xi| <= 255
        tiles_y, tiles_x = patches.shape[:2]
        for g in range(conv.group):
            chans, outs = slice(g * cg, (g + 1) * cg), slice(g * per_group, (g + 1) * per_group)
            group_patches = patches[:, :, chans]
            codes = int_codes(group_patches.reshape(tiles_y, tiles_x, cg, -1), hyperplanes, centering)
            for ty in range(tiles_y):
                for tx in range(tiles_x):
                    patch = group_patches[ty, tx]
                    members = group_channels(codes[ty, tx])
                    sums = np.stack([patch[m].sum(axis=0) for m in members])
                    counts = np.array([len(m) for m in members])[:, None, None]
                    merged_x = np.rint(sums / counts)                                  # step 4 (half to even)
                    if merge == "mean":
                        merged_w = np.stack([wq[outs][:, m].sum(axis=1) for m in members], axis=1)
                    else:
                        scales = [member_scales(patch[m].astype(np.float64), u, merge)
                                  for m, u in zip(members, merged_x)]
                        merged_w = np.stack([np.einsum("ocij,c->oij", wq[outs][:, m].astype(np.float64), s)
                                             for m, s in zip(members, scales)], axis=1)
                    if representation == "requant":                                   # step 5
                        peak = np.abs(merged_w).reshape(merged_w.shape[0], -1).max(axis=1)
                        r = np.where(peak > 0, peak / 127.0, 1.0)
                        q = np.rint(merged_w / r[:, None, None, None])
                    else:
                        r, q = np.ones(merged_w.shape[0]), merged_w
                    rows, cols = min(th, out_h - ty * th), min(tw, out_w - tx * tw)
                    acc = valid_conv(merged_x.astype(np.float64), q.astype(np.float64), conv.strides,
                                     conv.dilations, (rows, cols))                      # step 6 (exact)
                    y[n, outs, ty * th: ty * th + rows, tx * tw: tx * tw + cols] = acc * r[:, None, None]
        for g in range(conv.group):
            outs = slice(g * per_group, (g + 1) * per_group)
            y[n, outs] = _float_output(y[n, outs], x_scale, w_scale, bias, None if z is None else z[n], z_scale,
                                       z_zero, clamp, outs)
    return y if dequantized else _requantize(y, y_scale, y_zero)


def quantized_conv(x: np.ndarray, x_scale: float, x_zero: int, w: np.ndarray, w_scale: np.ndarray,
                   bias: Optional[np.ndarray], y_scale: float, y_zero: int, conv: ConvAttrs,
                   z: Optional[np.ndarray] = None, z_scale: float = 1.0, z_zero: int = 0,
                   clamp: Optional[Tuple[float, float]] = None, dequantized: bool = False) -> np.ndarray:
    """The plain quantized convolution with the same operands and output rule (QLinearConv's arithmetic)."""
    xi = x.astype(np.int64) - int(x_zero)
    w_scale = np.asarray(w_scale, np.float64).reshape(-1)
    batch, channels, height, width = x.shape
    (top, left, bottom, right), (out_h, out_w) = conv.resolve_pads((height, width)), conv.output_hw((height, width))
    out_channels, cg = w.shape[:2]
    per_group = out_channels // conv.group
    y = np.zeros((batch, out_channels, out_h, out_w), np.float64)
    for n in range(batch):
        padded = np.pad(xi[n], ((0, 0), (top, bottom), (left, right)))
        for g in range(conv.group):
            chans, outs = slice(g * cg, (g + 1) * cg), slice(g * per_group, (g + 1) * per_group)
            acc = valid_conv(padded[chans].astype(np.float64), w[outs].astype(np.float64), conv.strides,
                             conv.dilations, (out_h, out_w))
            y[n, outs] = _float_output(acc, x_scale, w_scale, bias, None if z is None else z[n], z_scale, z_zero,
                                       clamp, outs)
    return y if dequantized else _requantize(y, y_scale, y_zero)
