"""The int8 HasteConv reference (specified, not shipped): haste_onnx/op/reference_int8.py."""
import numpy as np
import pytest

from haste_onnx.op.geometry import ConvAttrs
from haste_onnx.op.hyperplanes import draw_hyperplanes
from haste_onnx.op.reference import haste_conv
from haste_onnx.op.reference_int8 import haste_conv_int8, int_codes, quantized_conv

CONV = ConvAttrs(kernel_shape=(3, 3), pads=(1, 1, 1, 1))


def operands(c=6, o=5, h=8, seed=0, flat=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, c, h, h)).astype(np.uint8)
    if flat:  # channels in pairs of equal values: merging happens
        x[:, 1::2] = x[:, 0::2][:, : c // 2]
    w = rng.integers(-127, 128, (o, c, 3, 3)).astype(np.int8)
    w[:, :, 0, 0] = 127  # max |w[o]| = 127: per-channel symmetric quantization's own scale
    w_scale = rng.uniform(0.001, 0.01, o)
    bias = rng.integers(-1000, 1000, o).astype(np.int32)
    return x, 0.02, 7, w, w_scale, bias


def test_all_channels_alone_is_the_quantized_conv():
    from haste_onnx.op.reference import extract_patches

    x, xs, xz, w, ws, b = operands()
    planes = draw_hyperplanes(40, 36, 0.0, 3)
    patches = extract_patches((x[0].astype(np.float32) - xz), CONV, (4, 4)).astype(np.int64)
    codes = int_codes(patches.reshape(2, 2, 6, -1), planes)
    assert all(len(set(codes[i, j].tolist())) == 6 for i in range(2) for j in range(2))  # every channel alone
    ys, yz = 0.5, 100
    plain = quantized_conv(x, xs, xz, w, ws, b, ys, yz, CONV)
    assert len(np.unique(plain)) > 20  # not saturated
    np.testing.assert_array_equal(haste_conv_int8(x, xs, xz, w, ws, b, planes, ys, yz, CONV,
                                                  representation="int16"), plain)
    # max |w[o]| = 127: re-quantizing the (unmerged) filters changes nothing
    np.testing.assert_array_equal(haste_conv_int8(x, xs, xz, w, ws, b, planes, ys, yz, CONV), plain)


def test_integer_codes_match_float_codes_without_centring():
    x, xs, xz, *_ = operands()
    planes = draw_hyperplanes(12, 36, 0.67, 5)
    v = (x[0, :, :6, :6].reshape(1, 6, -1).astype(np.int64) - xz)
    from haste_onnx.op.reference import hash_codes

    np.testing.assert_array_equal(int_codes(v, planes, centering=False),
                                  hash_codes(v.astype(np.float32), planes, centering=False))


def test_merged_agrees_with_the_float_reference_within_the_rounding_of_merged_inputs():
    x, xs, xz, w, ws, b = operands(flat=True, seed=1)
    planes = draw_hyperplanes(4, 36, 0.67, 2)  # few planes: large groups
    xf = (x.astype(np.float32) - xz) * xs
    wf = w.astype(np.float32) * ws[:, None, None, None].astype(np.float32)
    bf = (b * xs * ws).astype(np.float32)
    ref = haste_conv(xf, wf, bf, planes, CONV, centering=False, merge="mean")
    got = haste_conv_int8(x, xs, xz, w, ws, b, planes, 1.0, 0, CONV, centering=False, merge="mean",
                          representation="int16", dequantized=True)
    bound = 0.5 * xs * np.abs(wf.astype(np.float64)).sum(axis=(1, 2, 3)).max()  # |rounding| <= 0.5 LSB per value
    assert np.abs(got - ref).max() <= bound + 1e-4
    assert np.abs(got - ref).max() > 0  # the merged inputs were rounded somewhere: merging happened
    # re-quantized merged filters: within one step of their per-tile scale more
    req = haste_conv_int8(x, xs, xz, w, ws, b, planes, 1.0, 0, CONV, centering=False, merge="mean",
                          representation="requant", dequantized=True)
    assert np.abs(req - ref).max() < 0.1 * np.abs(ref).max()


def test_project_needs_requantized_filters():
    x, xs, xz, w, ws, b = operands()
    planes = draw_hyperplanes(4, 36, 0.67, 2)
    with pytest.raises(ValueError, match="int16"):
        haste_conv_int8(x, xs, xz, w, ws, b, planes, 1.0, 0, CONV, merge="project", representation="int16")
    out = haste_conv_int8(x, xs, xz, w, ws, b, planes, 0.5, 100, CONV, merge="project")
    assert out.dtype == np.uint8 and out.shape == (1, 5, 8, 8)
