"""The numpy reference of HasteConv: the test oracle for every kernel.

It follows docs/op_spec.md step by step. Hashing is done in float32 in the
order the spec fixes, so it forms exactly the groups the C++ and CUDA kernels
form; merging and convolving are done in float64, so the reference is more
accurate than any float32 kernel it checks.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from onnx.reference.op_run import OpRun

from .geometry import DEFAULT_TILE, DOMAIN, ConvAttrs, patch_size
from .level import choose_level
from .stats import STATS_SIZE


def extract_patches(x: np.ndarray, conv: ConvAttrs, tile: Sequence[int]) -> np.ndarray:
    """All tiles' input patches of one image: [tiles_y, tiles_x, C, pH, pW] (step 1)."""
    channels, height, width = x.shape
    (top, left, _, _), (out_h, out_w) = conv.resolve_pads((height, width)), conv.output_hw((height, width))
    (ph, pw), (th, tw), (sh, sw) = patch_size(conv.kernel_shape, conv.strides, conv.dilations, tile), tile, conv.strides
    tiles_y, tiles_x = -(-out_h // th), -(-out_w // tw)
    # Zero-pad so that every tile's full-size patch lies inside the array.
    rows = max(top + height, (tiles_y - 1) * th * sh + ph)
    cols = max(left + width, (tiles_x - 1) * tw * sw + pw)
    padded = np.zeros((channels, rows, cols), np.float32)
    padded[:, top:top + height, left:left + width] = x
    patches = np.empty((tiles_y, tiles_x, channels, ph, pw), np.float32)
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            y0, x0 = ty * th * sh, tx * tw * sw
            patches[ty, tx] = padded[:, y0:y0 + ph, x0:x0 + pw]
    return patches


_TINY = np.float32(np.finfo(np.float32).tiny)


def flush(a: np.ndarray) -> np.ndarray:
    """Subnormal float32 values read as zero (steps 3-4b run flushed, like x86's FTZ and DAZ)."""
    return np.where(np.abs(a) < _TINY, np.float32(0), a).astype(np.float32)


def hash_codes(vectors: np.ndarray, hyperplanes: np.ndarray, centering: bool) -> np.ndarray:
    """L-bit codes of [..., C, d] channel vectors (steps 3 and 4), as uint64 [..., C]."""
    with np.errstate(invalid="ignore", over="ignore"):
        x = flush(vectors.astype(np.float32))
        channels, dim = x.shape[-2:]
        if centering:
            total = np.zeros(x.shape[:-2] + (dim,), np.float32)
            for c in range(channels):  # float32, in channel order, as the spec fixes
                total = flush(total + x[..., c, :])
            x = flush(x - flush(total / np.float32(channels))[..., None, :])
        planes = hyperplanes.astype(np.float32)
        projections = np.zeros(x.shape[:-1] + (planes.shape[0],), np.float32)
        for j in range(dim):  # float32, in increasing j; every product is exact
            projections = flush(projections + x[..., j:j + 1] * planes[:, j])
    bits = (projections > 0).astype(np.uint64)
    weights = np.left_shift(np.uint64(1), np.arange(planes.shape[0], dtype=np.uint64))
    return (bits * weights).sum(axis=-1, dtype=np.uint64)


def magnitude_buckets(vectors: np.ndarray) -> np.ndarray:
    """Step 4b: the binary exponent of each channel's squared norm, int64 [..., C].

    float32, summed in increasing j with every square rounded first, as the spec
    fixes; 0 gives -100000 and Inf or NaN 100000.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        x = flush(vectors.astype(np.float32))
        total = np.zeros(x.shape[:-1], np.float32)
        for j in range(x.shape[-1]):
            total = flush(total + flush(x[..., j] * x[..., j]))
    exponents = np.frexp(total)[1].astype(np.int64)
    exponents[total == 0] = -100000
    exponents[~np.isfinite(total)] = 100000
    return exponents


def group_channels(codes: np.ndarray, buckets: Optional[np.ndarray] = None) -> list:
    """Channels with equal codes (and buckets), as index arrays ordered by their first member (step 5)."""
    keys = codes.tolist() if buckets is None else list(zip(codes.tolist(), buckets.tolist()))
    groups: dict = {}
    for c, key in enumerate(keys):
        groups.setdefault(key, []).append(c)
    return [np.array(members) for members in groups.values()]


def valid_conv(x: np.ndarray, w: np.ndarray, strides: Sequence[int], dilations: Sequence[int],
               out_hw: Sequence[int]) -> np.ndarray:
    """Valid convolution of x [C, h, w] with w [M, C, kH, kW], first out_hw outputs only."""
    (sh, sw), (dh, dw), (oh, ow) = strides, dilations, out_hw
    out = np.zeros((w.shape[0], oh, ow), np.float64)
    for ky in range(w.shape[2]):
        for kx in range(w.shape[3]):
            window = x[:, ky * dh: ky * dh + (oh - 1) * sh + 1: sh, kx * dw: kx * dw + (ow - 1) * sw + 1: sw]
            out += np.einsum("mc,cyx->myx", w[:, :, ky, kx], window)
    return out




def haste_conv(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], hyperplanes: np.ndarray,
               conv: ConvAttrs, tile: Sequence[int] = DEFAULT_TILE, centering: bool = True,
               stats: Optional[np.ndarray] = None, magnitude_split: bool = False,
               merge: str = "mean", z: Optional[np.ndarray] = None,
               clamp: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """HasteConv of a batch x [N, C_in, H, W]; returns float32 [N, C_out, H_out, W_out].

    `z` (Y's shape) is added after the bias and `clamp` = (min, max), the fused activation, applied last
    (step 7 of the spec).

    `stats`, an int64 array of STATS_SIZE (op/stats.py), receives the work counted per
    tile exactly as the kernels count it (only outputs inside the image count).
    """
    # The kernels run with subnormals flushed to zero (see the spec).
    x, w = flush(x.astype(np.float32)), flush(w.astype(np.float32))
    b = None if b is None else flush(b.astype(np.float32))
    batch, channels, height, width = x.shape
    out_channels, group_channels_in = w.shape[:2]
    groups = conv.group
    out_h, out_w = conv.output_hw((height, width))
    th, tw = tile
    out_per_group = out_channels // groups
    w64 = w.astype(np.float64)
    y = np.zeros((batch, out_channels, out_h, out_w), np.float64)
    for n in range(batch):
        patches = extract_patches(x[n], conv, tile)  # [Ty, Tx, C, pH, pW]
        tiles_y, tiles_x = patches.shape[:2]
        for g in range(groups):
            chans = slice(g * group_channels_in, (g + 1) * group_channels_in)
            outs = slice(g * out_per_group, (g + 1) * out_per_group)
            group_patches = patches[:, :, chans]
            vectors = group_patches.reshape(tiles_y, tiles_x, group_channels_in, -1)
            codes = hash_codes(vectors, hyperplanes, centering)
            buckets = magnitude_buckets(vectors) if magnitude_split else None
            for ty in range(tiles_y):
                for tx in range(tiles_x):
                    patch = group_patches[ty, tx].astype(np.float64)
                    members = group_channels(codes[ty, tx], None if buckets is None else buckets[ty, tx])
                    merged_x = np.stack([patch[m].mean(axis=0) for m in members])           # step 6
                    scales = [member_scales(patch[m], u, merge) for m, u in zip(members, merged_x)]
                    merged_w = np.stack([np.einsum("ocij,c->oij", w64[outs][:, m], s)
                                         for m, s in zip(members, scales)], axis=1)
                    rows, cols = min(th, out_h - ty * th), min(tw, out_w - tx * tw)
                    y[n, outs, ty * th: ty * th + rows, tx * tw: tx * tw + cols] = valid_conv(  # step 7
                        merged_x, merged_w, conv.strides, conv.dilations, (rows, cols))
                    if stats is not None:
                        _count(stats, rows * cols * out_per_group * w.shape[2] * w.shape[3], group_channels_in,
                               members, patch[0].size, hyperplanes, centering, w.shape[2] * w.shape[3] * out_per_group,
                               merge)
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    with np.errstate(invalid="ignore", over="ignore"):
        out = flush(y.astype(np.float32))
        if z is not None:
            if z.shape != out.shape:
                raise ValueError(f"Z must have the output's shape {list(out.shape)}, got {list(z.shape)}")
            out = flush(out + flush(z.astype(np.float32)))
        if clamp is not None:
            lo, hi = np.float32(clamp[0]), np.float32(clamp[1])
            out = np.where(out < lo, lo, np.where(out > hi, hi, out)).astype(np.float32)
        return out


def activation_clamp(activation, params) -> Optional[Tuple[float, float]]:
    """(min, max) of the `activation` attribute ("" / None: no clamp), as the spec defines it."""
    activation = activation.decode() if isinstance(activation, bytes) else (activation or "")
    params = [] if params is None else [float(v) for v in params]
    if activation == "":
        return None
    if activation == "Relu" and not params:
        return (0.0, float("inf"))
    if activation == "Clip" and len(params) == 2 and params[0] <= params[1]:
        return (params[0], params[1])
    raise ValueError(f"bad activation {activation!r} with activation_params {params}")


def member_scales(members: np.ndarray, merged: np.ndarray, merge: str) -> np.ndarray:
    """Step 6's weight of each member's filter slice: 1 ("mean"), or with "project" the
    least-squares scale of the member onto the merged patch, <x_c, u> / <u, u>, so that a
    member equal to s * u contributes exactly s * W_c * u. Singletons always get 1."""
    if merge == "mean" or len(members) == 1:
        return np.ones(len(members))
    if merge != "project":
        raise ValueError(f"unknown merge {merge!r}")
    flat, u = members.reshape(len(members), -1), merged.reshape(-1)
    norm = float(u @ u)
    return flat @ u / norm if norm > 0 else np.zeros(len(members))


def _count(stats, outputs_times_kernel, channels, members, d, hyperplanes, centering, filter_row, merge="mean"):
    merged = len(members)
    multi = sum(1 for m in members if len(m) > 1)
    in_multi = channels - (merged - multi)
    project = (in_multi + multi) * d if merge == "project" else 0
    stats += np.array([outputs_times_kernel * channels, outputs_times_kernel * merged,
                       2 * channels * d if centering else 0, channels * int(np.count_nonzero(hyperplanes)),
                       (channels - merged) * (d + filter_row) + multi * d + project, merged, channels], np.int64)


def merged_channel_count(x: np.ndarray, hyperplanes: np.ndarray, conv: ConvAttrs,
                         tile: Sequence[int] = DEFAULT_TILE, centering: bool = True,
                         magnitude_split: bool = False) -> np.ndarray:
    """C' per image, conv group and tile: [N, group, tiles_y, tiles_x] (for tests and analysis)."""
    counts = []
    gc = x.shape[1] // conv.group
    for n in range(x.shape[0]):
        patches = extract_patches(x[n], conv, tile)
        per_group = []
        for g in range(conv.group):
            p = patches[:, :, g * gc:(g + 1) * gc]
            vectors = p.reshape(p.shape[0], p.shape[1], gc, -1)
            codes = hash_codes(vectors, hyperplanes, centering)
            buckets = magnitude_buckets(vectors) if magnitude_split else np.zeros(codes.shape, np.int64)
            per_group.append([[len(set(zip(codes[i, j].tolist(), buckets[i, j].tolist())))
                               for j in range(codes.shape[1])] for i in range(codes.shape[0])])
        counts.append(per_group)
    return np.array(counts)


class HasteConv(OpRun):
    """`haste::HasteConv` for `onnx.reference.ReferenceEvaluator(model, new_ops=[HasteConv])`."""

    op_domain = DOMAIN

    def _run(self, X, W, B=None, hyperplanes=None, Z=None, auto_pad=None, dilations=None, group=None,  # noqa: N803
             kernel_shape=None, pads=None, strides=None, tile=None, centering=None, seed=None, sparsity=None,
             magnitude_split=None, merge=None, activation=None, activation_params=None):
        attrs = {k: v for k, v in dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape,
                                       pads=pads, strides=strides).items() if v is not None}
        conv = ConvAttrs.from_dict(attrs, W.shape)
        if hyperplanes is None:
            raise ValueError("HasteConv needs its hyperplanes input")
        tile = tuple(tile) if tile is not None else DEFAULT_TILE
        centering = True if centering is None else bool(centering)
        split = bool(magnitude_split) if magnitude_split is not None else False
        merge = merge.decode() if isinstance(merge, bytes) else (merge or "mean")
        clamp = activation_clamp(activation, activation_params)
        if len(self.onnx_node.output) > 1 and self.onnx_node.output[1]:
            stats = np.zeros(STATS_SIZE, np.int64)
            return (haste_conv(X, W, B, hyperplanes, conv, tile, centering, stats, split, merge, Z, clamp), stats)
        return (haste_conv(X, W, B, hyperplanes, conv, tile, centering, magnitude_split=split, merge=merge, z=Z,
                           clamp=clamp),)


class HasteLevel(OpRun):
    """`haste::HasteLevel` (op/level.py) for the ReferenceEvaluator: the index of the level that runs."""

    op_domain = DOMAIN

    def _run(self, level, levels=None):  # noqa: D401
        values = np.asarray(level, np.float32).reshape(-1)
        if values.size != 1:
            raise ValueError(f"haste_level must be one number (a scalar), got {values.size} values")
        return (np.array(choose_level(float(values[0]), list(levels)), np.int64),)
