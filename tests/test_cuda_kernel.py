"""The CUDA kernel against the numpy reference and the CPU kernel (needs a CUDA GPU and a library built with CUDA).

Driven through the library's C entry point from PyTorch (tests/cuda_entry.py), so it runs where only the
CPU onnxruntime is installed; skips with the reason otherwise. scripts/gpu_check.sh runs it on a GPU machine.
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import pytest

import haste_onnx
from cuda_entry import cuda_unavailable, plan_for_case
from haste_onnx.op.reference import extract_patches, hash_codes, haste_conv
from haste_onnx.op.stats import STATS_SIZE
from op_cases import Case, haste_model, make_arrays, random_case, reference, relative_error

REASON = cuda_unavailable()
# scripts/gpu_check.sh sets HASTE_REQUIRE_GPU=1: there a missing GPU or CUDA build fails instead of skipping.
REQUIRED = os.environ.get("HASTE_REQUIRE_GPU") == "1"
pytestmark = pytest.mark.skipif(REASON is not None and not REQUIRED, reason=REASON or "")


@pytest.fixture(autouse=True)
def _cuda_required():
    if REASON is not None:
        pytest.fail(f"HASTE_REQUIRE_GPU=1 but the CUDA kernel cannot run: {REASON}")
TOLERANCE = 1e-4
SUMMARY = os.environ.get("HASTE_GPU_SUMMARY")  # gpu_check.sh collects figures here (JSON lines)


def _torch():
    import torch
    return torch


def _dev(a):
    torch = _torch()
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).cuda()


def _run_cuda(case, x, w, b, h, z=None, clamp=None, stats=False):
    """(y, stats or None, codes [tasks, C_g] or None, plan) of one call through the C entry."""
    torch = _torch()
    plan = plan_for_case(case, x.shape)
    if clamp is not None:
        plan.call.clamp, plan.call.out_min, plan.call.out_max = 1, clamp[0], clamp[1]
    s = torch.zeros(STATS_SIZE, dtype=torch.int64, device="cuda") if stats else None
    y = plan.run(_dev(x), _dev(w), _dev(b), _dev(h), _dev(z), stats=s)
    torch.cuda.synchronize()
    codes = plan.codes(plan.last_workspace) if plan.layout[3] >= plan.layout[4] and plan.layout[4] else None
    return y.cpu().numpy(), (s.cpu().numpy() if stats else None), codes, plan


def _reference_codes(case, x, h) -> np.ndarray:
    """Codes per tile task in the kernel's task order: [N * groups * tiles, C_g]."""
    conv, cg = case.conv(), case.in_channels // case.group
    rows = []
    for n in range(x.shape[0]):
        patches = extract_patches(x[n], conv, case.tile)  # [Ty, Tx, C, pH, pW]
        ty, tx = patches.shape[:2]
        for g in range(case.group):
            vec = patches[:, :, g * cg:(g + 1) * cg].reshape(ty, tx, cg, -1)
            rows.append(hash_codes(vec, h, case.centering).reshape(ty * tx, cg))
    return np.concatenate(rows) if rows else np.zeros((0, cg), np.uint64)


def _cpu(case, x, w, b, h):
    sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(threads=1),
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x})[0]


def _record(**fields):
    if SUMMARY:
        with open(SUMMARY, "a") as f:
            f.write(json.dumps(fields) + "\n")


def test_cuda_matches_reference_and_cpu_with_identical_codes_on_random_configurations():
    rng = np.random.default_rng(2026)
    count = int(os.environ.get("HASTE_CUDA_CASES", "120"))
    worst_ref = worst_cpu = 0.0
    for index in range(count):
        case = random_case(rng, index)
        if case.auto_pad != "NOTSET":
            case.pads = (0, 0, 0, 0)
        x, w, b, h = make_arrays(case)
        expected = reference(case, x, w, b, h)
        cpu = _cpu(case, x, w, b, h)
        actual, _, codes, _ = _run_cuda(case, x, w, b, h)
        err_ref, err_cpu = relative_error(actual, expected), relative_error(actual, cpu)
        assert err_ref <= TOLERANCE, f"case {index}: {err_ref:.2e} from the reference for {case}"
        assert err_cpu <= TOLERANCE, f"case {index}: {err_cpu:.2e} from the CPU kernel for {case}"
        if codes is not None and not case.magnitude_split:
            np.testing.assert_array_equal(codes, _reference_codes(case, x, h), err_msg=f"case {index}: {case}")
        worst_ref, worst_cpu = max(worst_ref, err_ref), max(worst_cpu, err_cpu)
    _record(test="random_configurations", cases=count, worst_relative_error_vs_reference=worst_ref,
            worst_relative_error_vs_cpu=worst_cpu)


def test_cuda_stats_count_the_work_exactly():
    rng = np.random.default_rng(11)
    for index in range(30):
        case = random_case(rng, 1000 + index, max_channels=64)
        if case.auto_pad != "NOTSET":
            case.pads = (0, 0, 0, 0)
        x, w, b, h = make_arrays(case)
        expected = np.zeros(STATS_SIZE, np.int64)
        haste_conv(x, w, b, h, case.conv(), case.tile, case.centering, stats=expected,
                   magnitude_split=case.magnitude_split, merge=case.merge)
        _, stats, _, _ = _run_cuda(case, x, w, b, h, stats=True)
        np.testing.assert_array_equal(stats, expected, err_msg=f"case {index}: {case}")


@pytest.mark.parametrize("clamp", [None, (0.0, np.inf), (-0.5, 0.75)])
@pytest.mark.parametrize("with_z", [False, True])
@pytest.mark.parametrize("tile", [(4, 4), (3, 5)])
def test_cuda_fused_residual_and_activation(clamp, with_z, tile):
    case = Case(batch=2, in_channels=32, out_channels=40, height=11, width=14, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=6, tile=tile, repeated_channels=8, merge="project")
    x, w, b, h = make_arrays(case)
    plain = haste_conv(x, w, b, h, case.conv(), case.tile, case.centering, merge=case.merge)
    z = np.random.default_rng(3).standard_normal(plain.shape).astype(np.float32) if with_z else None
    if z is not None:
        z[0, 0, 0, 0] = np.nan
    expected = haste_conv(x, w, b, h, case.conv(), case.tile, case.centering, merge=case.merge, z=z, clamp=clamp)
    actual, _, _, _ = _run_cuda(case, x, w, b, h, z=z, clamp=clamp)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    assert relative_error(np.where(nan, 0, actual), np.where(nan, 0, expected)) <= TOLERANCE


def test_cuda_non_finite_inputs_give_the_reference_codes():
    case = Case(batch=1, in_channels=24, out_channels=8, height=9, width=9, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=10, sparsity=0.5)
    x, w, b, h = make_arrays(case)
    x[0, 3, 2, 2], x[0, 5, 6, 1], x[0, 7, 8, 8] = np.nan, np.inf, -np.inf
    x[0, 9, 4, 4] = 1e-40  # subnormal: reads as 0
    _, _, codes, _ = _run_cuda(case, x, w, b, h)
    np.testing.assert_array_equal(codes, _reference_codes(case, x, h))


def test_cuda_empty_batch_and_chunked_large_call():
    torch = _torch()
    case = Case(batch=0, in_channels=8, out_channels=8, height=6, width=6, kernel=(3, 3), pads=(1, 1, 1, 1))
    x, w, b, h = make_arrays(case)
    actual, _, _, _ = _run_cuda(case, x, w, b, h)
    assert actual.shape == (0, 8, 6, 6)
    # A call cut into several chunks of tiles gives the same result as the reference.
    case = Case(batch=16, in_channels=256, out_channels=16, height=64, width=64, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=12, repeated_channels=64)
    x, w, b, h = make_arrays(case)
    plan = plan_for_case(case)
    assert plan.layout[3] < plan.layout[4], "the case should need several chunks"
    y = plan.run(_dev(x), _dev(w), _dev(b), _dev(h)).cpu().numpy()
    torch.cuda.synchronize()
    first = Case(**{**case.__dict__, "batch": 1})
    assert relative_error(y[:1], reference(first, x[:1], w, b, h)) <= TOLERANCE


def test_cuda_thousand_runs_leak_no_device_memory():
    torch = _torch()
    case = Case(batch=4, in_channels=64, out_channels=64, height=16, width=16, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=12)
    x, w, b, h = (_dev(a) for a in make_arrays(case))
    plan = plan_for_case(case)
    y = torch.empty(plan.y_shape, device="cuda")
    ws = torch.empty(max(1, plan.workspace_bytes), dtype=torch.uint8, device="cuda")
    for _ in range(10):
        plan.run(x, w, b, h, y=y, workspace=ws)
    torch.cuda.synchronize()
    free_before = torch.cuda.mem_get_info()[0]
    for _ in range(1000):
        plan.run(x, w, b, h, y=y, workspace=ws)
    torch.cuda.synchronize()
    free_after = torch.cuda.mem_get_info()[0]
    _record(test="leak", free_bytes_before=free_before, free_bytes_after=free_after)
    assert free_after >= free_before - (1 << 20), (free_before, free_after)


def test_cuda_whole_rewritten_model_layer_by_layer(tmp_path):
    """Every HasteConv of the rewritten bundled ResNet-20, fed its CPU input, agrees with its CPU output."""
    import onnx
    from onnx import helper, numpy_helper

    from haste_onnx.op import ConvAttrs

    src = os.path.join(os.path.dirname(__file__), "..", "models", "resnet20_fmnist.onnx")
    out = tmp_path / "r20.onnx"
    from haste_onnx.cli import main
    assert main(["rewrite", src, str(out), "--hyperplanes", "10"]) == 0
    model = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "HasteConv"]
    assert nodes
    existing = {o.name for o in model.graph.output}
    for n in nodes:
        for name in (n.input[0], n.output[0]) + ((n.input[4],) if len(n.input) > 4 and n.input[4] else ()):
            if name not in existing:
                model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
                existing.add(name)
    sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(threads=2),
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(tuple(d.dim_value or 4 for d in
                                                       model.graph.input[0].type.tensor_type.shape.dim)
                                                 ).astype(np.float32)
    values = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {model.graph.input[0].name: x})))
    worst = 0.0
    for n in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        w, h = inits[n.input[1]], inits[n.input[3]]
        b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] else None
        z = values[n.input[4]] if len(n.input) > 4 and n.input[4] else None
        conv = ConvAttrs.from_dict(attrs, w.shape)
        act = attrs.get("activation", b"")
        act = act.decode() if isinstance(act, bytes) else act
        clamp = None if not act else ((0.0, np.inf) if act == "Relu" else tuple(attrs["activation_params"]))
        case = Case(batch=values[n.input[0]].shape[0], in_channels=values[n.input[0]].shape[1],
                    out_channels=w.shape[0], height=values[n.input[0]].shape[2], width=values[n.input[0]].shape[3],
                    kernel=tuple(w.shape[2:]), strides=conv.strides, dilations=conv.dilations,
                    pads=conv.pads, auto_pad=conv.auto_pad, group=conv.group, bias=b is not None,
                    tile=tuple(attrs.get("tile", (4, 4))), hyperplanes=h.shape[0],
                    centering=bool(attrs.get("centering", 1)), magnitude_split=bool(attrs.get("magnitude_split", 0)),
                    merge=(attrs.get("merge", b"mean").decode() if isinstance(attrs.get("merge", b"mean"), bytes)
                           else attrs.get("merge", "mean")))
        actual, _, _, _ = _run_cuda(case, values[n.input[0]], w, b, h, z=z, clamp=clamp)
        err = relative_error(actual, values[n.output[0]])
        assert err <= TOLERANCE, f"node {n.name}: {err:.2e}"
        worst = max(worst, err)
    _record(test="resnet20_layer_by_layer", nodes=len(nodes), worst_relative_error_vs_cpu=worst)


def test_cuda_execution_provider_places_haste_conv_on_cuda():
    """Only where onnxruntime-gpu is installed: HasteConv runs under CUDAExecutionProvider, no CPU fallback."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu is not installed)")
    case = Case(batch=2, in_channels=32, out_channels=16, height=12, width=12, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=8, repeated_channels=8)
    x, w, b, h = make_arrays(case)
    opts = haste_onnx.session_options(threads=1)
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), opts,
                                providers=["CUDAExecutionProvider"])
    actual = sess.run(None, {"X": x})[0]
    assert relative_error(actual, _cpu(case, x, w, b, h)) <= TOLERANCE
