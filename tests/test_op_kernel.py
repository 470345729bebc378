"""The C++ kernel against the numpy reference, and against onnxruntime's Conv."""
import json
from pathlib import Path
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import haste_onnx

from haste_onnx.op import ConvAttrs
from haste_onnx.op.reference import extract_patches, hash_codes, haste_conv, merged_channel_count
from op_cases import Case, conv_model, haste_model, make_arrays, random_case, reference, relative_error

TOLERANCE = 1e-4
SUMMARY = os.environ.get("HASTE_FUZZ_SUMMARY")  # where to write counts and the worst error, if set


def _fuzz_count(config, slow):
    explicit = config.getoption("--fuzz-cases")
    return explicit if explicit else (2000 if slow else 200)


def _check_random_cases(count, run_haste, seed):
    rng = np.random.default_rng(seed)
    worst, worst_case, merged_tiles = 0.0, None, 0
    for index in range(count):
        case = random_case(rng, index)
        x, w, b, h = make_arrays(case)
        expected = reference(case, x, w, b, h)
        actual = run_haste(haste_model(case, w, b, h), {"X": x})
        err = relative_error(actual, expected)
        assert err <= TOLERANCE, f"case {index}: relative error {err:.2e} for {case}"
        if err > worst:
            worst, worst_case = err, case
        if x.shape[0] and expected.size:
            counts = merged_channel_count(x[:1], h, case.conv(), case.tile, case.centering, case.magnitude_split)
            merged_tiles += int((counts < case.in_channels // case.group).sum())
    # The cases must exercise merging, not only the all-distinct path.
    assert merged_tiles > count
    if SUMMARY:
        with open(SUMMARY, "a") as f:
            f.write(json.dumps({"cases": count, "worst_relative_error": worst, "worst_case": repr(worst_case),
                                "tiles_with_merges_in_first_images": merged_tiles}) + "\n")
    return worst


def test_kernel_matches_reference_on_random_configurations(request, run_haste):
    _check_random_cases(_fuzz_count(request.config, slow=False), run_haste, seed=2026)


@pytest.mark.slow
def test_kernel_matches_reference_long_run(request, run_haste):
    _check_random_cases(_fuzz_count(request.config, slow=True), run_haste, seed=7)


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (5, 5)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
def test_kernel_covers_each_kernel_stride_dilation(kernel, stride, dilation, run_haste):
    case = Case(batch=2, in_channels=24, out_channels=40, height=13, width=11, kernel=kernel,
                strides=(stride, stride), dilations=(dilation, dilation),
                pads=(kernel[0] // 2 * dilation, 0, kernel[0] // 2 * dilation + 1, 1), hyperplanes=6,
                tile=(3, 5), repeated_channels=6)
    x, w, b, h = make_arrays(case)
    assert relative_error(run_haste(haste_model(case, w, b, h), {"X": x}), reference(case, x, w, b, h)) <= TOLERANCE


@pytest.mark.parametrize("auto_pad", ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("bias", [True, False])
def test_kernel_each_auto_pad_with_and_without_bias(auto_pad, bias, run_haste):
    case = Case(batch=3, in_channels=32, out_channels=17, height=10, width=14, kernel=(3, 3), strides=(2, 1),
                pads=(1, 2, 0, 1), auto_pad=auto_pad, bias=bias, hyperplanes=5, repeated_channels=8)
    x, w, b, h = make_arrays(case)
    assert relative_error(run_haste(haste_model(case, w, b, h), {"X": x}), reference(case, x, w, b, h)) <= TOLERANCE


@pytest.mark.parametrize("channels", [64, 256])
def test_wide_layers(channels, run_haste):
    case = Case(batch=2, in_channels=channels, out_channels=channels, height=8, width=8, kernel=(3, 3),
                pads=(1, 1, 1, 1), hyperplanes=10, tile=(4, 4))
    x, w, b, h = make_arrays(case)
    assert relative_error(run_haste(haste_model(case, w, b, h), {"X": x}), reference(case, x, w, b, h)) <= TOLERANCE


def _all_codes_distinct(case, x, h):
    conv = case.conv()
    for n in range(x.shape[0]):
        patches = extract_patches(x[n], conv, case.tile)
        codes = hash_codes(patches.reshape(patches.shape[0], patches.shape[1], case.in_channels, -1), h, case.centering)
        for row in codes.reshape(-1, case.in_channels):
            if len(set(row.tolist())) != case.in_channels:
                return False
    return True


@pytest.mark.parametrize("tile", [(4, 4), (2, 3), (8, 8)])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_distinct_codes_give_exactly_conv(tile, strides, run_haste, run_plain):
    case = Case(batch=2, in_channels=16, out_channels=24, height=15, width=12, kernel=(3, 3), strides=strides,
                pads=(1, 1, 1, 1), hyperplanes=64, sparsity=0.0, tile=tile)
    x, w, b, h = make_arrays(case)
    assert _all_codes_distinct(case, x, h)  # the premise: nothing merges
    haste = run_haste(haste_model(case, w, b, h), {"X": x})
    conv = run_plain(conv_model(case, w, b), {"X": x})
    assert relative_error(haste, conv.astype(np.float64)) <= TOLERANCE


def test_exact_copies_merge_and_stay_exact(run_haste, run_plain):
    rng = np.random.default_rng(5)
    case = Case(batch=2, in_channels=32, out_channels=16, height=12, width=12, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=64, sparsity=0.0)
    x, w, b, h = make_arrays(case)
    distinct = 12
    x = x[:, rng.integers(0, distinct, size=case.in_channels)]  # 32 channels, 12 distinct contents
    x[:, :distinct] = make_arrays(case)[0][:, :distinct]
    unique = len({x[0, c].tobytes() for c in range(case.in_channels)})
    counts = merged_channel_count(x, h, case.conv(), case.tile, case.centering)
    # Copies always merge; the 64 dense hyperplanes keep different channels apart (edge
    # tiles can make more channels look alike, never fewer).
    assert counts.max() <= unique < case.in_channels
    haste = run_haste(haste_model(case, w, b, h), {"X": x})
    conv = run_plain(conv_model(case, w, b), {"X": x})
    assert relative_error(haste, conv.astype(np.float64)) <= TOLERANCE


def test_few_hyperplanes_merge_a_lot_and_change_the_output(run_haste, run_plain):
    case = Case(batch=1, in_channels=64, out_channels=32, height=16, width=16, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=2)
    x, w, b, h = make_arrays(case)
    counts = merged_channel_count(x, h, case.conv(), case.tile, case.centering)
    assert counts.max() <= 4  # 2 bits: at most 4 groups
    haste = run_haste(haste_model(case, w, b, h), {"X": x})
    conv = run_plain(conv_model(case, w, b), {"X": x})
    assert relative_error(haste, reference(case, x, w, b, h)) <= TOLERANCE
    assert relative_error(haste, conv.astype(np.float64)) > 0.05  # it really compresses


def test_results_do_not_depend_on_thread_count(run_haste):
    case = Case(batch=3, in_channels=48, out_channels=40, height=20, width=20, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=8, repeated_channels=10)
    x, w, b, h = make_arrays(case)
    model = haste_model(case, w, b, h)
    one = run_haste(model, {"X": x}, threads=1)
    two = run_haste(model, {"X": x}, threads=2)
    assert np.array_equal(one, two)


def test_empty_batch(run_haste):
    case = Case(batch=0, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1))
    x, w, b, h = make_arrays(case)
    y = run_haste(haste_model(case, w, b, h), {"X": x})
    assert y.shape == (0, 8, 8, 8)


def test_hyperplanes_as_graph_input_are_used(run_haste):
    """Non-constant weights and hyperplanes are packed per run and give the same result."""
    import onnx
    from onnx import helper
    case = Case(batch=1, in_channels=16, out_channels=8, height=9, width=9, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=4)
    x, w, b, h = make_arrays(case)
    model = haste_model(case, w, b, h)
    graph = model.graph
    kept = [i for i in graph.initializer if i.name not in ("W", "hyperplanes")]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.input.extend([helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, list(w.shape)),
                        helper.make_tensor_value_info("hyperplanes", onnx.TensorProto.FLOAT, list(h.shape))])
    y = run_haste(model, {"X": x, "W": w, "hyperplanes": h})
    assert relative_error(y, reference(case, x, w, b, h)) <= TOLERANCE


def test_stats_output_counts_the_work_exactly(run_haste):
    import onnx
    import onnxruntime as ort
    import haste_onnx
    from haste_onnx.op.reference import haste_conv
    from haste_onnx.op.stats import STATS_FIELDS
    from onnx import helper
    rng = np.random.default_rng(11)
    for index in range(20):
        case = random_case(rng, 1000 + index, max_channels=64)
        x, w, b, h = make_arrays(case)
        model = haste_model(case, w, b, h)
        model.graph.node[0].output.append("stats")
        model.graph.output.append(helper.make_tensor_value_info("stats", onnx.TensorProto.INT64, [7]))
        sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(1),
                                    providers=["CPUExecutionProvider"])
        y, stats = sess.run(None, {"X": x})
        expected = np.zeros(len(STATS_FIELDS), np.int64)
        ref = haste_conv(x, w, b, h, case.conv(), case.tile, case.centering, expected, case.magnitude_split,
                         case.merge)
        assert relative_error(y, ref) <= TOLERANCE
        assert stats.tolist() == expected.tolist(), case
        if y.size:
            assert stats[0] == y.size * (case.in_channels // case.group) * case.kernel[0] * case.kernel[1]
            assert 0 < stats[1] <= stats[0]


@pytest.mark.parametrize("size", [8, 20])  # few tiles (two-phase path) and many tiles
def test_two_nodes_with_same_shapes_but_different_hyperplanes(size, run_haste):
    """Each node hashes with its own hyperplanes, also when shapes and L are equal."""
    import onnx
    from onnx import helper, numpy_helper
    case = Case(batch=1, in_channels=32, out_channels=32, height=size, width=size, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=3)
    x, w1, b1, h1 = make_arrays(case)
    case2 = Case(**{**case.__dict__, "seed": 99})
    _, w2, b2, h2 = make_arrays(case2)
    assert not np.array_equal(h1, h2)
    nodes = [helper.make_node("HasteConv", ["X", "W1", "B1", "H1"], ["T"], domain="haste", pads=[1, 1, 1, 1]),
             helper.make_node("HasteConv", ["T", "W2", "B2", "H2"], ["Y"], domain="haste", pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w1, "W1"), (b1, "B1"), (h1, "H1"), (w2, "W2"), (b2, "B2"), (h2, "H2"))]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("T", onnx.TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("haste", 1)],
                              ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(2),
                                providers=["CPUExecutionProvider"])
    for _ in range(2):  # the second run reuses every thread's workspace
        y, t = sess.run(None, {"X": x})
        assert relative_error(t, reference(case, x, w1, b1, h1)) <= TOLERANCE
        # The second node's reference reads the library's own first output, so both hash the same values.
        assert relative_error(y, reference(case2, t, w2, b2, h2)) <= TOLERANCE


def test_magnitude_split_keeps_scaled_copies_apart(run_haste, run_plain):
    """Sign hashes cannot see scale: x and 100*x share every code. magnitude_split separates them."""
    case = Case(batch=1, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=64, sparsity=0.0, centering=False)
    x, w, b, h = make_arrays(case)
    x[:, 8:] = 100.0 * x[:, :8]
    conv = run_plain(conv_model(case, w, b), {"X": x}).astype(np.float64)
    merged = run_haste(haste_model(case, w, b, h), {"X": x})
    assert merged_channel_count(x, h, case.conv(), case.tile, False).max() <= 8
    assert relative_error(merged, conv) > 0.1
    case.magnitude_split = True
    split = run_haste(haste_model(case, w, b, h), {"X": x})
    assert merged_channel_count(x, h, case.conv(), case.tile, False, True).min() == 16
    assert relative_error(split, conv) <= TOLERANCE
    assert relative_error(split, reference(case, x, w, b, h)) <= TOLERANCE


@pytest.mark.parametrize("isa", ["avx2", "generic"])
def test_other_instruction_set_variants_match_the_reference(isa, tmp_path):
    """The library carries AVX-512, AVX2 and plain C++ variants; this CPU runs the best one,
    so the others are checked in a child process that asks for them (HASTE_ONNX_ISA)."""
    import subprocess
    import sys
    import textwrap
    script = textwrap.dedent("""
        import numpy as np, sys
        sys.path.insert(0, %r)
        from op_cases import haste_model, make_arrays, random_case, reference, relative_error
        import haste_onnx, onnxruntime as ort
        rng = np.random.default_rng(31)
        worst = 0.0
        for index in range(60):
            case = random_case(rng, 5000 + index, max_channels=96)
            x, w, b, h = make_arrays(case)
            sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(2),
                                        providers=["CPUExecutionProvider"])
            worst = max(worst, relative_error(sess.run(None, {"X": x})[0], reference(case, x, w, b, h)))
        print(worst)
    """ % str(Path(__file__).parent))
    import os
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, HASTE_ONNX_ISA=isa))
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) <= TOLERANCE


def test_merge_project_makes_scaled_copies_exact(run_haste, run_plain):
    """With merge="project", channels that are multiples of each other merge (sign hashes
    cannot tell them apart) and still give exactly Conv; with "mean" they do not."""
    case = Case(batch=2, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=64, sparsity=0.0, centering=False)
    x, w, b, h = make_arrays(case)
    x[:, 8:] = np.array([0.5, 2, 3, 4, 5, 6, 7, 8], np.float32)[None, :, None, None] * x[:, :8]
    conv = run_plain(conv_model(case, w, b), {"X": x}).astype(np.float64)
    counts = merged_channel_count(x, h, case.conv(), case.tile, False)
    assert counts.min() == counts.max() == 8  # exactly the eight pairs merge
    mean = run_haste(haste_model(case, w, b, h), {"X": x})
    assert relative_error(mean, conv) > 0.1
    case.merge = "project"
    project = run_haste(haste_model(case, w, b, h), {"X": x})
    assert relative_error(project, conv) <= TOLERANCE
    assert relative_error(project, reference(case, x, w, b, h)) <= TOLERANCE


def test_unknown_merge_is_refused(run_haste):
    case = Case(batch=1, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3), merge="median")
    x, w, b, h = make_arrays(case)
    with pytest.raises(Exception) as info:
        run_haste(haste_model(case, w, b, h), {"X": x})
    assert "merge must be 'mean' or 'project'" in str(info.value) and "haste_node" in str(info.value)


def _fused_model(case, w, b, h, activation, params, with_z):
    """haste_model plus a residual input Z and a fused activation."""
    model = haste_model(case, w, b, h)
    node = model.graph.node[0]
    if with_z:
        node.input.append("Z")
        model.graph.input.append(onnx.helper.make_tensor_value_info("Z", onnx.TensorProto.FLOAT, [None] * 4))
    if activation:
        node.attribute.append(onnx.helper.make_attribute("activation", activation))
    if params is not None:
        node.attribute.append(onnx.helper.make_attribute("activation_params", params))
    return model


@pytest.mark.parametrize("activation,params,clamp", [("", None, None), ("Relu", None, (0.0, np.inf)),
                                                     ("Clip", [-0.5, 0.75], (-0.5, 0.75))])
@pytest.mark.parametrize("with_z", [False, True])
@pytest.mark.parametrize("tile", [(4, 4), (3, 5), (2, 2)])
def test_kernel_fused_residual_and_activation(activation, params, clamp, with_z, tile, run_haste):
    """Y = act(conv + B + Z) (spec step 7) on whole and edge tiles, NaN kept NaN by the activation."""
    case = Case(batch=2, in_channels=32, out_channels=40, height=11, width=14, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=6, tile=tile, repeated_channels=8, merge="project")
    x, w, b, h = make_arrays(case)
    plain = haste_conv(x, w, b, h, case.conv(), case.tile, case.centering, merge=case.merge)
    z = np.random.default_rng(3).standard_normal(plain.shape).astype(np.float32) if with_z else None
    if z is not None:
        z[0, 0, 0, 0] = np.nan  # survives every activation
    expected = haste_conv(x, w, b, h, case.conv(), case.tile, case.centering, merge=case.merge, z=z, clamp=clamp)
    feeds = {"X": x, **({"Z": z} if with_z else {})}
    actual = run_haste(_fused_model(case, w, b, h, activation, params, with_z), feeds)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    assert relative_error(np.where(nan, 0, actual), np.where(nan, 0, expected)) <= TOLERANCE
    if clamp is not None:
        finite = actual[~nan]
        assert finite.min() >= clamp[0] and finite.max() <= clamp[1]
        assert (finite == clamp[0]).any()  # the activation did clamp something
    if with_z:  # the residual really was added: differs from the unfused output
        assert not np.allclose(np.where(nan, 0, actual), np.where(nan, 0, plain), atol=1e-3)


@pytest.mark.parametrize("activation,params,message", [
    ("Tanh", None, "activation must be '', 'Relu' or 'Clip', got 'Tanh'"),
    ("Clip", [1.0], "activation Clip needs activation_params [min, max], got 1 values"),
    ("Clip", [1.0, -1.0], "Clip's activation_params must be [min, max] with min <= max"),
    ("Relu", [0.0], "activation Relu takes no activation_params")])
def test_kernel_refuses_bad_activation(activation, params, message, run_haste):
    case = Case(batch=1, in_channels=16, out_channels=8, height=6, width=6, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=4)
    x, w, b, h = make_arrays(case)
    with pytest.raises(Exception, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_haste(_fused_model(case, w, b, h, activation, params, False), {"X": x})


def test_kernel_refuses_residual_of_another_shape(run_haste):
    case = Case(batch=1, in_channels=16, out_channels=8, height=6, width=6, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=4)
    x, w, b, h = make_arrays(case)
    with pytest.raises(Exception, match=r"Z must have the output's shape \[1, 8, 6, 6\], got \[1, 8, 6, 5\]"):
        run_haste(_fused_model(case, w, b, h, "", None, True), {"X": x, "Z": np.zeros((1, 8, 6, 5), np.float32)})


@pytest.mark.parametrize("merge", ["mean", "project"])
@pytest.mark.parametrize("channels,size", [(32, 32), (256, 8)])
def test_kernel_neighbouring_tiles_that_share_groups(merge, channels, size, run_haste):
    """Channels that are (nearly) positive multiples of four patterns (centring off) fall into the same four
    groups in most tiles, so the pairs of tiles the kernel computes together share groups (their merged filters
    are summed in one pass over the weights, with each tile's scales): tile by tile (32 channels, 64 tiles) and
    in two phases (256 channels); one and two threads."""
    case = Case(batch=2, in_channels=channels, out_channels=48, height=size, width=size, kernel=(3, 3),
                pads=(1, 1, 1, 1), hyperplanes=12, centering=False, merge=merge)
    x, w, b, h = make_arrays(case)
    rng = np.random.default_rng(5)
    patterns = rng.standard_normal((2, 4, size, size)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    x = patterns[:, np.arange(channels) % 4] * scales[None, :, None, None]
    # A little noise, so that merge="project" gives each tile its own scales.
    x = (x + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)
    counts = merged_channel_count(x, h, case.conv(), case.tile, False)
    assert counts.mean() <= 8  # tiles merge their channels into a few groups
    expected = reference(case, x, w, b, h)
    for threads in (1, 2):
        actual = run_haste(haste_model(case, w, b, h), {"X": x}, threads=threads)
        assert relative_error(actual, expected) <= TOLERANCE
