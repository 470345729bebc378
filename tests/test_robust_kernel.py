"""Robustness of the CPU kernel (issue 7, items 1 and 3-5).

- differential fuzzing against the numpy reference over wide shapes,
  attributes and hard input values (200 cases; 5000 with -m slow);
- NaN and Inf inputs (docs/op_spec.md, "NaN and Inf");
- shapes and attributes that cannot work: refused with the node's name;
- absurd sizes: refused, never a crash or an attempt to allocate them;
- concurrency: one session from 8 threads, two sessions side by side, and
  results independent of the intra-op thread count.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from typing import Optional

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import haste_onnx
from op_cases import Case, haste_model, make_arrays, reference, relative_error

TOLERANCE = 1e-4
NODE = "haste_node"  # the name haste_model gives its node
SUMMARY = os.environ.get("HASTE_FUZZ_SUMMARY")  # where to write counts and the worst error, if set

VALUE_MODES = ("normal", "repeated", "zero_channels", "constant_channels", "integers", "huge", "tiny", "mixed",
               "denormal")


# ---- the fuzz generator ---------------------------------------------------------------------------

def fuzz_case(rng: np.random.Generator, index: int):
    """A random valid configuration over the whole range the issue asks for, and a value mode."""
    kernel = (int(rng.integers(1, 8)), int(rng.integers(1, 8))) if rng.random() < 0.4 else \
        (int(rng.choice([1, 3, 5, 7])),) * 2
    group = int(rng.choice([1, 1, 1, 1, 2, 3, 4]))
    # Channels 1..512, log-uniform; many channels come with small images and few outputs.
    in_channels = max(group, int(round(np.exp(rng.uniform(0, np.log(512))))) // group * group)
    wide = in_channels > 96
    out_per_group = int(rng.integers(1, (24 if wide else 48) // group + 2))
    dil = (int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2, 3])))
    if wide:
        dil = (min(dil[0], 2), min(dil[1], 2))
    strides = (int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2, 3])))
    eff = [(kernel[0] - 1) * dil[0] + 1, (kernel[1] - 1) * dil[1] + 1]
    auto_pad = str(rng.choice(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    cap = 8 if wide else 20
    height = int(rng.integers(eff[0] if auto_pad == "VALID" else 1, max(eff[0], cap) + 1))
    width = int(rng.integers(eff[1] if auto_pad == "VALID" else 1, max(eff[1], cap) + 1))
    pads = tuple(int(p) for p in rng.integers(0, 4, size=4))  # asymmetric
    if auto_pad == "NOTSET":  # the padded input must hold the dilated kernel
        pads = (pads[0], pads[1], max(pads[2], eff[0] - height - pads[0]), max(pads[3], eff[1] - width - pads[1]))
    # Tiles from 1 to larger than the whole output.
    tile = tuple(int(rng.choice([1, 2, 3, 4, 5, 7, 8, 12, 16, 32])) for _ in range(2))
    case = Case(batch=int(rng.choice([0, 1, 1, 1, 2, 3])), in_channels=in_channels,
                out_channels=out_per_group * group, height=height, width=width, kernel=kernel, strides=strides,
                dilations=dil, pads=pads, auto_pad=auto_pad, group=group, bias=bool(rng.random() < 0.7), tile=tile,
                hyperplanes=int(rng.integers(1, 65)), sparsity=float(rng.choice([0.0, 0.5, 2 / 3, 0.9])),
                centering=bool(rng.random() < 0.8), seed=100_000 + index)
    return case, str(rng.choice(VALUE_MODES))


def fuzz_arrays(case: Case, mode: str):
    """make_arrays, then the value mode's changes to X. Returns x, w, b, h and the power-of-two scale of X.

    Scales are powers of two, so dividing the outputs by them is exact and the
    relative error stays meaningful for tiny and huge magnitudes.
    """
    x, w, b, h = make_arrays(case)
    rng = np.random.default_rng(case.seed + 7)
    per_group = case.in_channels // case.group
    scale = 1.0
    if mode == "repeated" and per_group > 1:
        x, _, _, _ = make_arrays(replace(case, repeated_channels=int(rng.integers(1, per_group))))
    elif mode == "zero_channels":
        x[:, rng.random(case.in_channels) < 0.5] = 0.0
    elif mode == "constant_channels":
        chosen = rng.random(case.in_channels) < 0.6
        values = rng.choice([0.0, 1.0, -2.5, 3.0], size=case.in_channels).astype(np.float32)
        x[:, chosen] = values[chosen][None, :, None, None]
    elif mode == "integers":  # many exact ties: projections exactly 0, identical patches
        x = rng.integers(-2, 3, size=x.shape).astype(np.float32)
    elif mode == "huge":
        scale = 2.0 ** 70
    elif mode == "tiny":
        scale = 2.0 ** -100
    elif mode == "denormal":  # X below 2**-126: subnormal inputs and products
        scale = 2.0 ** -128
    elif mode == "mixed":  # channels of wildly different magnitudes
        x = x * (2.0 ** rng.integers(-40, 41, size=case.in_channels)).astype(np.float32)[None, :, None, None]
    if scale != 1.0:
        x = (x * np.float32(scale)).astype(np.float32)
        if b is not None:
            b = (b * np.float32(scale)).astype(np.float32)
    return x, w, b, h, scale


def scaled_error(actual: np.ndarray, expected: np.ndarray, scale: float) -> float:
    return relative_error(actual.astype(np.float64) / scale, expected.astype(np.float64) / scale)


def run_session(model, feeds, threads=1):
    sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(threads),
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _fuzz(count: int, seed: int):
    rng = np.random.default_rng(seed)
    worst, worst_case, modes = 0.0, None, {}
    for index in range(count):
        case, mode = fuzz_case(rng, index)
        x, w, b, h, scale = fuzz_arrays(case, mode)
        expected = reference(case, x, w, b, h)
        actual = run_session(haste_model(case, w, b, h), {"X": x})
        assert actual.shape == expected.shape, (index, case)
        assert np.isfinite(actual).all(), f"case {index} ({mode}): non-finite output for {case}"
        err = scaled_error(actual, expected, scale)
        assert err <= TOLERANCE, f"case {index} ({mode}): relative error {err:.2e} for {case}"
        modes[mode] = modes.get(mode, 0) + 1
        if err > worst:
            worst, worst_case = err, (mode, case)
    assert set(modes) == set(VALUE_MODES)  # every kind of value was exercised
    if SUMMARY:
        with open(SUMMARY, "a") as f:
            f.write(json.dumps({"test": "robust_fuzz", "cases": count, "worst_relative_error": worst,
                                "worst_case": repr(worst_case), "modes": modes}) + "\n")
    return worst


def _count(config, default):
    explicit = config.getoption("--fuzz-cases")
    return explicit if explicit else default


def test_fuzz_kernel_against_reference(request):
    _fuzz(_count(request.config, 200), seed=77)


@pytest.mark.slow
def test_fuzz_kernel_against_reference_long(request):
    _fuzz(_count(request.config, 5000), seed=78)


def test_fuzz_generator_covers_the_ranges():
    rng = np.random.default_rng(77)
    cases = [fuzz_case(rng, i)[0] for i in range(200)]
    assert {c.batch for c in cases} >= {0, 1, 2}
    assert max(c.in_channels for c in cases) > 256 and min(c.in_channels for c in cases) == 1
    assert max(max(c.kernel) for c in cases) == 7
    assert {c.auto_pad for c in cases} == {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"}
    assert any(c.pads[0] != c.pads[2] for c in cases if c.auto_pad == "NOTSET")
    assert any(c.strides != (1, 1) for c in cases) and any(c.dilations != (1, 1) for c in cases)
    assert any(c.tile[0] > c.height and c.tile[1] > c.width for c in cases)
    assert {c.hyperplanes for c in cases} >= {1, 64} or (min(c.hyperplanes for c in cases) <= 2 and
                                                        max(c.hyperplanes for c in cases) >= 63)


def test_zero_input_channels_give_the_bias():
    case = Case(batch=2, in_channels=0, out_channels=5, height=6, width=7, kernel=(3, 3), pads=(1, 1, 1, 1))
    rng = np.random.default_rng(3)
    w = np.zeros((5, 0, 3, 3), np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    h = np.ones((4, 36), np.float32)
    y = run_session(haste_model(case, w, b, h), {"X": np.zeros((2, 0, 6, 7), np.float32)})
    np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None], (2, 5, 6, 7)))


# ---- NaN and Inf ----------------------------------------------------------------------------------

def compare_non_finite(actual: np.ndarray, expected: np.ndarray, context) -> None:
    """NaN at the same places, the same infinities, and the finite values within tolerance."""
    assert actual.shape == expected.shape
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), context
    assert np.array_equal(np.isposinf(actual), np.isposinf(expected)), context
    assert np.array_equal(np.isneginf(actual), np.isneginf(expected)), context
    finite = np.isfinite(expected)
    err = relative_error(np.where(finite, actual, 0).astype(np.float32), np.where(finite, expected, 0))
    assert err <= TOLERANCE, (err, context)


@pytest.mark.parametrize("kind", ["nan", "inf", "-inf", "mixed", "all_nan_channel"])
@pytest.mark.parametrize("centering", [True, False])
def test_nan_and_inf_propagate_like_the_reference(kind, centering):
    rng = np.random.default_rng(hash((kind, centering)) % 2**32)
    for index in range(6):
        case = Case(batch=int(rng.integers(1, 3)), in_channels=int(rng.integers(2, 40)),
                    out_channels=int(rng.integers(1, 20)), height=int(rng.integers(3, 14)),
                    width=int(rng.integers(3, 14)), kernel=(3, 3), pads=(1, 0, 1, 2),
                    strides=(int(rng.integers(1, 3)), 1), tile=(int(rng.integers(1, 6)), int(rng.integers(1, 6))),
                    hyperplanes=int(rng.integers(1, 65)), centering=centering, seed=500 + index)
        x, w, b, h = make_arrays(case)
        spots = rng.random(x.shape) < 0.01
        spots.flat[int(rng.integers(0, x.size))] = True
        if kind == "nan":
            x[spots] = np.nan
        elif kind == "inf":
            x[spots] = np.inf
        elif kind == "-inf":
            x[spots] = -np.inf
        elif kind == "mixed":
            x[spots] = rng.choice([np.nan, np.inf, -np.inf], size=int(spots.sum())).astype(np.float32)
        else:
            x[:, int(rng.integers(0, case.in_channels))] = np.nan
        expected = reference(case, x, w, b, h)
        actual = run_session(haste_model(case, w, b, h), {"X": x})
        compare_non_finite(actual, expected, (kind, index, case))
        assert not np.isfinite(actual).all()  # something non-finite reaches the output
        if kind in ("nan", "all_nan_channel"):
            assert not np.isinf(actual).any()


def test_nan_output_is_where_conv_would_put_it():
    """One NaN input: NaN only at outputs whose tile's merged patch reads it, and Conv's NaN outputs among them."""
    case = Case(batch=1, in_channels=16, out_channels=4, height=12, width=12, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=8, tile=(4, 4))
    x, w, b, h = make_arrays(case)
    x[0, 3, 5, 6] = np.nan
    y = run_session(haste_model(case, w, b, h), {"X": x})
    conv_nan = np.zeros(y.shape, bool)
    conv_nan[:, :, 4:7, 5:8] = True  # Conv: the 3x3 neighbourhood of (5, 6)
    assert np.isnan(y[conv_nan]).all()
    assert np.isnan(y).any(axis=1).sum() <= 16  # confined to the tile(s) that read it
    assert np.isfinite(y[:, :, 8:, :]).all() and np.isfinite(y[:, :, :, :4]).all()


# ---- shapes and attributes that cannot work --------------------------------------------------------

def single_node(x_shape, w: np.ndarray, h: np.ndarray, b: Optional[np.ndarray] = None, static_x=False,
                constant=True, **attrs) -> onnx.ModelProto:
    names = ["X", "W", "B" if b is not None else "", "H"]
    node = helper.make_node("HasteConv", names, ["Y"], domain="haste", name=NODE, **attrs)
    tensors = [(w, "W"), (h, "H")] + ([(b, "B")] if b is not None else [])
    inputs = [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, list(x_shape) if static_x else None)]
    inits = []
    for value, name in tensors:
        if constant:
            inits.append(numpy_helper.from_array(value, name))
        else:
            inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    graph = helper.make_graph([node], "bad", inputs, [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("haste", 1)],
                             ir_version=8)


def refusal(model, feeds, threads=1) -> str:
    """The error text of session creation or the first run; fails if both succeed."""
    try:
        sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(threads),
                                    providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
    except Exception as err:  # onnxruntime raises several types
        return str(err)
    pytest.fail("the model was accepted")


W3 = np.ones((4, 8, 3, 3), np.float32) * 0.1
H36 = np.ones((4, 36), np.float32)
X8 = np.ones((1, 8, 8, 8), np.float32)

BAD = {
    # name: (x, W, hyperplanes, B, attrs, expected text)
    "zero kernel_shape": (X8, W3, H36, None, dict(kernel_shape=[0, 3]), "kernel_shape must be positive"),
    "negative kernel_shape": (X8, W3, H36, None, dict(kernel_shape=[3, -3]), "kernel_shape must be positive"),
    "kernel_shape not W's": (X8, W3, H36, None, dict(kernel_shape=[5, 5]), "does not match W's shape"),
    "empty W kernel": (X8, np.ones((4, 8, 0, 3), np.float32), H36, None, {}, "W has an empty kernel"),
    "channels differ from W": (np.ones((1, 6, 8, 8), np.float32), W3, H36, None, {}, "W expects 8 input channels"),
    "hyperplanes wrong width": (X8, W3, np.ones((4, 30), np.float32), None, {}, "hyperplanes must have shape [L, 36]"),
    "no hyperplanes": (X8, W3, np.ones((0, 36), np.float32), None, {}, "hyperplanes must have shape [L, 36]"),
    "65 hyperplanes": (X8, W3, np.ones((65, 36), np.float32), None, {}, "1 <= L <= 64"),
    "hyperplanes rank 1": (X8, W3, np.ones(36, np.float32), None, {}, "hyperplanes must have"),
    "hyperplanes rank 3": (X8, W3, np.ones((1, 4, 36), np.float32), None, {}, "hyperplanes must have"),
    "hyperplane value 0.5": (X8, W3, np.full((4, 36), 0.5, np.float32), None, {}, "must be -1, 0 or +1"),
    "hyperplane value NaN": (X8, W3, np.full((4, 36), np.nan, np.float32), None, {}, "must be -1, 0 or +1"),
    "group does not divide": (np.ones((1, 9, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32), H36, None,
                              dict(group=2), "group 2 does not divide"),
    "group zero": (X8, W3, H36, None, dict(group=0), "group must be positive"),
    "group negative": (X8, W3, H36, None, dict(group=-2), "group must be positive"),
    "group does not divide outputs": (X8, np.ones((3, 4, 3, 3), np.float32), H36, None, dict(group=2),
                                      "does not divide the 3 output channels"),
    "X rank 3": (np.ones((8, 8, 8), np.float32), W3, H36, None, {}, "X must have rank 4"),
    "X rank 5": (np.ones((1, 8, 8, 8, 1), np.float32), W3, H36, None, {}, "X must have rank 4"),
    "W rank 3": (X8, np.ones((4, 8, 9), np.float32), H36, None, {}, "W must have rank 4"),
    "B wrong length": (X8, W3, H36, np.ones(3, np.float32), {}, "B must have shape [4]"),
    "zero stride": (X8, W3, H36, None, dict(strides=[0, 1]), "strides must be positive"),
    "three strides": (X8, W3, H36, None, dict(strides=[1, 1, 1]), "strides must have 2 values"),
    "zero dilation": (X8, W3, H36, None, dict(dilations=[1, 0]), "dilations must be positive"),
    "negative pad": (X8, W3, H36, None, dict(pads=[1, -1, 1, 1]), "pads must not be negative"),
    "two pads": (X8, W3, H36, None, dict(pads=[1, 1]), "pads must have 4 values"),
    "zero tile": (X8, W3, H36, None, dict(tile=[0, 4]), "tile must be positive"),
    "tile too large": (X8, W3, H36, None, dict(tile=[300, 4]), "tile must be at most 256"),
    "unknown auto_pad": (X8, W3, H36, None, dict(auto_pad="SAME"), "unknown auto_pad"),
    "input smaller than kernel": (np.ones((1, 8, 2, 2), np.float32), W3, H36, None, {},
                                  "smaller than the dilated kernel"),
    # absurd sizes: refused before any arithmetic can overflow or any memory is asked for
    "huge stride": (X8, W3, H36, None, dict(strides=[2**62, 2**62]), "strides must be at most"),
    "huge dilation": (X8, W3, H36, None, dict(dilations=[2**40, 1]), "dilations must be at most"),
    "huge pads": (X8, W3, H36, None, dict(pads=[2**62] * 4), "pads must be at most"),
    "huge patch": (X8, W3, H36, None, dict(dilations=[2**24, 2**24], pads=[2**24] * 4), "is too large"),
    "workspace too large": (np.ones((1, 512, 8, 8), np.float32), np.ones((1, 512, 7, 7), np.float32),
                            np.ones((1, 262 * 262), np.float32), None, dict(tile=[256, 256], pads=[3] * 4),
                            "the workspace would need"),
}


@pytest.mark.parametrize("static_x", [False, True])
@pytest.mark.parametrize("constant", [True, False])
@pytest.mark.parametrize("name", list(BAD))
def test_bad_shapes_and_attributes_are_refused_with_the_node_name(name, constant, static_x):
    x, w, h, b, attrs, expected = BAD[name]
    model = single_node(x.shape, w, h, b, static_x=static_x, constant=constant, **attrs)
    feeds = {"X": x}
    if not constant:
        feeds.update({"W": w, "H": h, **({"B": b} if b is not None else {})})
    text = refusal(model, feeds)
    assert f"'{NODE}'" in text and expected in text, text
    assert "Integer overflow" not in text and "Failed to allocate" not in text


def test_absurd_dimension_of_an_empty_tensor():
    """A zero batch allows any other dimension: one beyond 2**40 is refused, not multiplied."""
    x = np.zeros((0, 8, 2, 1), np.float32)
    w = np.ones((4, 8, 1, 1), np.float32)
    model = single_node(x.shape, w, np.ones((4, 16), np.float32), constant=False)
    w_huge = np.zeros((0, 8, 1, 1), np.float32)
    # W [0, 8, 2**41, 1] cannot be built in memory as numpy would need no bytes, but onnxruntime checks
    # sizes; a hyperplane tensor [0, 2**41] can: both are refused by dimension.
    text = refusal(model, {"X": x, "W": w_huge, "H": np.zeros((0, 2**41), np.float32)})
    assert f"'{NODE}'" in text and "unsupported dimension" in text, text


def test_bad_non_constant_hyperplanes_are_checked_on_every_run():
    case = Case(batch=1, in_channels=8, out_channels=4, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=4)
    x, w, b, h = make_arrays(case)
    model = single_node(x.shape, w, h, b, constant=False, pads=[1, 1, 1, 1])
    sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(1),
                                providers=["CPUExecutionProvider"])
    good = sess.run(None, {"X": x, "W": w, "B": b, "H": h})[0]
    assert relative_error(good, reference(case, x, w, b, h)) <= TOLERANCE
    bad = h.copy()
    bad[2, 5] = 2.0
    with pytest.raises(Exception) as info:
        sess.run(None, {"X": x, "W": w, "B": b, "H": bad})
    assert f"'{NODE}'" in str(info.value) and "got 2 at [2, 5]" in str(info.value)
    assert np.array_equal(sess.run(None, {"X": x, "W": w, "B": b, "H": h})[0], good)  # still usable


def test_a_refused_run_leaves_the_session_usable():
    case = Case(batch=1, in_channels=8, out_channels=4, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1))
    x, w, b, h = make_arrays(case)
    sess = ort.InferenceSession(haste_model(case, w, b, h, x_shape=[None] * 4).SerializeToString(),
                                haste_onnx.session_options(2), providers=["CPUExecutionProvider"])
    for bad in (np.ones((1, 5, 8, 8), np.float32), np.ones((1, 8, 0, 8), np.float32)):
        with pytest.raises(Exception) as info:
            sess.run(None, {"X": bad})
        assert f"'{NODE}'" in str(info.value)
    assert relative_error(sess.run(None, {"X": x})[0], reference(case, x, w, b, h)) <= TOLERANCE


# ---- concurrency and thread counts ------------------------------------------------------------------

def _hammer(sess, feeds, threads: int, runs: int):
    """Runs sess from `threads` Python threads at once; returns the number of results that differ."""
    barrier = threading.Barrier(threads)
    mismatches, errors = [0] * threads, []

    def work(slot):
        try:
            barrier.wait()
            for i in range(runs):
                feed, want = feeds[(slot + i) % len(feeds)]
                got = sess.run(None, feed)[0]
                if not np.array_equal(got, want):
                    mismatches[slot] += 1
        except Exception as err:  # reported below
            errors.append(err)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors[:3]
    return sum(mismatches)


def test_one_session_from_8_threads_1000_runs_each():
    case = Case(batch=1, in_channels=8, out_channels=4, height=6, width=6, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=3, tile=(3, 3), repeated_channels=3)
    x, w, b, h = make_arrays(case)
    sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(1),
                                providers=["CPUExecutionProvider"])
    inputs = [x, x * 2 - 1, np.roll(x, 1, axis=1)]  # different inputs, so a mixed-up result would show
    feeds = [({"X": v}, sess.run(None, {"X": v})[0]) for v in inputs]
    for feed, want in feeds:
        assert relative_error(want, reference(case, feed["X"], w, b, h)) <= TOLERANCE
    assert _hammer(sess, feeds, threads=8, runs=1000) == 0


@pytest.mark.parametrize("size", [6, 24])  # few tiles (two-phase split) and many tiles
def test_concurrent_runs_with_an_intra_op_pool(size):
    case = Case(batch=1, in_channels=40, out_channels=48, height=size, width=size, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=5, repeated_channels=10)
    x, w, b, h = make_arrays(case)
    sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(2),
                                providers=["CPUExecutionProvider"])
    feeds = [({"X": v}, sess.run(None, {"X": v})[0]) for v in (x, -x)]
    assert _hammer(sess, feeds, threads=8, runs=25) == 0


def test_two_sessions_with_different_settings_do_not_interfere():
    case_a = Case(batch=2, in_channels=24, out_channels=20, height=10, width=10, kernel=(3, 3), pads=(1, 1, 1, 1),
                  hyperplanes=8, tile=(4, 4), repeated_channels=6, seed=1)
    case_b = replace(case_a, tile=(2, 3), hyperplanes=3, centering=False, kernel=(5, 5), pads=(2, 2, 2, 2),
                     sparsity=0.0, seed=2)
    made = {}
    for name, case, threads in (("a", case_a, 1), ("b", case_b, 2)):
        x, w, b, h = make_arrays(case)
        sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(),
                                    haste_onnx.session_options(threads), providers=["CPUExecutionProvider"])
        solo = sess.run(None, {"X": x})[0]
        assert relative_error(solo, reference(case, x, w, b, h)) <= TOLERANCE
        made[name] = (sess, x, solo)
    mismatches, errors = [], []

    def work(name, runs):
        sess, x, solo = made[name]
        try:
            for _ in range(runs):
                if not np.array_equal(sess.run(None, {"X": x})[0], solo):
                    mismatches.append(name)
        except Exception as err:
            errors.append(err)

    pool = [threading.Thread(target=work, args=(name, 100)) for name in ("a", "b", "a", "b")]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors and not mismatches


@pytest.mark.parametrize("size,batch", [(5, 1), (9, 1), (23, 2)])  # two-phase with 1/4 tiles, whole tiles
def test_results_identical_across_intra_op_thread_counts(size, batch):
    case = Case(batch=batch, in_channels=36, out_channels=70, height=size, width=size, kernel=(3, 3),
                pads=(1, 1, 1, 1), hyperplanes=6, repeated_channels=9, tile=(4, 4))
    x, w, b, h = make_arrays(case)
    model = haste_model(case, w, b, h)
    results = {threads: run_session(model, {"X": x}, threads) for threads in (1, 2, 3, 4, 8)}
    for threads, y in results.items():
        assert np.array_equal(y, results[1]), threads
    assert relative_error(results[1], reference(case, x, w, b, h)) <= TOLERANCE
