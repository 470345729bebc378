"""The aarch64 build under emulation: the cross-built op library and C++ runner,
run by qemu-aarch64 against PyPI's aarch64 onnxruntime, give the x86 results.

`make test` (and `make edge-test`) builds everything and sets:
  HASTE_ONNX_AARCH64_BUILD  the cross build folder (libhaste_onnx_ops.so, examples/cpp/haste_run)
  HASTE_ONNX_QEMU           qemu-aarch64 (8.1 or newer: it must emulate /proc/cpuinfo)
  HASTE_ONNX_AARCH64_ROOT   the aarch64 system root (default /usr/aarch64-linux-gnu)
  HASTE_ONNX_EDGE_REPORT    optional: a JSON file that receives the largest differences
Without HASTE_ONNX_AARCH64_BUILD the tests are skipped (a plain pytest on a machine without the cross tools).
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import haste_onnx
from cpp_runner import bundled_rewritten, runner
from op_cases import haste_model, make_arrays, random_case, relative_error

BUILD = os.environ.get("HASTE_ONNX_AARCH64_BUILD")
pytestmark = pytest.mark.skipif(not BUILD, reason="HASTE_ONNX_AARCH64_BUILD not set (make test / make edge-test set it)")
TOLERANCE = 1e-4
KERNEL_CASES = 48
DIFFS = {}


@pytest.fixture(scope="module")
def arm():
    build = Path(BUILD)
    lib, exe = build / "libhaste_onnx_ops.so", build / "examples" / "cpp" / "haste_run"
    qemu = os.environ.get("HASTE_ONNX_QEMU") or shutil.which("qemu-aarch64")
    root = os.environ.get("HASTE_ONNX_AARCH64_ROOT", "/usr/aarch64-linux-gnu")
    for need in (lib, exe, qemu and Path(qemu), Path(root)):
        if not need or not need.exists():
            pytest.fail(f"missing for the aarch64 tests: {need}")
    return dict(lib=lib, exe=exe, qemu=qemu, root=root)


def run_arm(arm, model, inputs, out_dir, isa=None):
    """The aarch64 runner under qemu; returns the outputs it saved and what it said."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HASTE_ONNX_ISA_REPORT="1")
    env.pop("HASTE_ONNX_ISA", None)
    if isa:
        env["HASTE_ONNX_ISA"] = isa
    args = [arm["qemu"], "-L", arm["root"], str(arm["exe"]), str(model), "--ops", str(arm["lib"]),
            "--save", str(out_dir), "--runs", "0", "--warmup", "0", "--threads", "2"]
    for x in inputs:
        args += ["--input", str(x)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def record(name, value):
    DIFFS[name] = max(DIFFS.get(name, 0.0), value)
    report = os.environ.get("HASTE_ONNX_EDGE_REPORT")
    if report:
        Path(report).write_text(json.dumps(DIFFS, indent=1) + "\n")


def x86_outputs(model, feeds):
    sess = ort.InferenceSession(str(model), haste_onnx.session_options(threads=1), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def test_library_is_aarch64_and_exports_only_register(arm):
    head = arm["lib"].read_bytes()[:20]  # ELF, 64-bit, little-endian, shared object, EM_AARCH64 (183)
    assert head[:6] == b"\x7fELF\x02\x01" and head[16:20] == (3).to_bytes(2, "little") + (183).to_bytes(2, "little")
    if shutil.which("file"):
        assert "ELF 64-bit LSB shared object, ARM aarch64" in subprocess.run(
            ["file", "-L", str(arm["lib"])], capture_output=True, text=True, check=True).stdout
    nm = os.environ.get("HASTE_ONNX_AARCH64_NM", "aarch64-linux-gnu-nm")
    exported = subprocess.run([nm, "-D", "--defined-only", str(arm["lib"])], capture_output=True, text=True,
                              check=True).stdout.split()
    assert [s for s in exported[2::3]] == ["RegisterCustomOps"], exported
    symbols = subprocess.run([nm, "-C", str(arm["lib"])], capture_output=True, text=True, check=True).stdout
    assert "haste::neon::ComputeBlocks" in symbols and "haste::generic::ComputeBlocks" in symbols
    assert "avx2" not in symbols and "avx512" not in symbols
    # Nothing ARM-specific in the x86 library (installed stripped: look for the variant names in its data).
    x86 = Path(haste_onnx.get_library_path()).read_bytes()
    assert b"generic\0" in x86 and b"neon\0" not in x86 and b"neon\0" in arm["lib"].read_bytes()

def test_bundled_model_equals_x86(arm, tmp_path):
    model = bundled_rewritten(tmp_path)
    x = np.random.default_rng(11).standard_normal((4, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = x86_outputs(model, {"input": x})["logits"]
    for isa in (None, "generic"):
        proc = run_arm(arm, model, [tmp_path / "x.npy"], tmp_path / f"out_{isa}", isa)
        assert f"haste-onnx: kernel variant {isa or 'neon'}" in proc.stderr
        got = np.load(tmp_path / f"out_{isa}" / "logits.npy")
        diff = float(np.abs(got - expected).max())
        record(f"resnet20_l12 {isa or 'neon'} max abs", diff)
        assert diff <= TOLERANCE


def test_random_kernel_cases_equal_x86(arm, tmp_path):
    """KERNEL_CASES randomized HasteConv configurations, one node each, side by side
    in one model (one emulated session for all of them)."""
    rng = np.random.default_rng(2027)
    graphs, feeds, files = [], {}, []
    for i in range(KERNEL_CASES):
        case = random_case(rng, i)
        x, w, b, h = make_arrays(case)
        m = onnx.compose.add_prefix(haste_model(case, w, b, h), f"c{i}_")
        graphs.append(m.graph)
        feeds[f"c{i}_X"] = x
        files.append(tmp_path / f"x{i}.npy")
        np.save(files[-1], x)
    graph = onnx.helper.make_graph([n for g in graphs for n in g.node], "cases",
                                   [v for g in graphs for v in g.input], [v for g in graphs for v in g.output],
                                   [t for g in graphs for t in g.initializer])
    model = onnx.helper.make_model(graph, opset_imports=m.opset_import, ir_version=m.ir_version)
    onnx.save(model, tmp_path / "cases.onnx")
    expected = x86_outputs(tmp_path / "cases.onnx", feeds)
    for isa in (None, "generic"):
        run_arm(arm, tmp_path / "cases.onnx", files, tmp_path / f"out_{isa}", isa)
        worst = 0.0
        for i in range(KERNEL_CASES):
            got = np.load(tmp_path / f"out_{isa}" / f"c{i}_Y.npy")
            err = relative_error(got, expected[f"c{i}_Y"])
            worst = max(worst, err)
            assert err <= TOLERANCE, (i, err)
        record(f"{KERNEL_CASES} kernel cases {isa or 'neon'} max relative", worst)


def test_cpp_runner_x86_and_aarch64_agree_on_random_input(arm, tmp_path):
    """The runner's seeded random input is the same on both platforms."""
    model = bundled_rewritten(tmp_path)
    subprocess.run([str(runner()), str(model), "--ops", haste_onnx.get_library_path(), "--seed", "4",
                    "--shape", "2x1x32x32", "--save", str(tmp_path), "--runs", "0"], capture_output=True, check=True)
    (tmp_path / "arm").mkdir()
    proc = subprocess.run([arm["qemu"], "-L", arm["root"], str(arm["exe"]), str(model), "--ops", str(arm["lib"]),
                           "--seed", "4", "--shape", "2x1x32x32", "--save", str(tmp_path / "arm"), "--runs", "0"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = float(np.abs(np.load(tmp_path / "arm" / "logits.npy") - np.load(tmp_path / "logits.npy")).max())
    record("resnet20_l12 seeded random input, runner x86 vs aarch64, max abs", diff)
    assert diff <= TOLERANCE
