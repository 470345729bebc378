"""The C++ runner examples/cpp/haste_run against Python's onnxruntime (same wheel)."""
import re
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

import haste_onnx
from cpp_runner import ROOT, bundled_rewritten, runner


@pytest.fixture(scope="module")
def haste_run():
    return runner()


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory):
    return bundled_rewritten(tmp_path_factory.mktemp("runner"))


def run(exe, *args, check=True):
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def python_outputs(model, x, ops=True):
    opts = haste_onnx.session_options(threads=1) if ops else ort.SessionOptions()
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return {o.name: y for o, y in zip(sess.get_outputs(), sess.run(None, {sess.get_inputs()[0].name: x}))}


def checksums(stdout):
    return {m[0]: (m[1], float(m[2]), float(m[3]))
            for m in re.findall(r"^output (\S+) shape (\S+) sum (\S+) abs_sum (\S+)$", stdout, re.M)}


@pytest.mark.parametrize("rewritten_model", [True, False], ids=["rewritten", "original"])
def test_outputs_equal_python(haste_run, rewritten, tmp_path, rewritten_model):
    model = rewritten if rewritten_model else ROOT / "models" / "resnet20_fmnist.onnx"
    x = np.random.default_rng(3).standard_normal((3, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ops = ["--ops", haste_onnx.get_library_path()] if rewritten_model else []
    proc = run(haste_run, model, *ops, "--input", tmp_path / "x.npy", "--save", tmp_path, "--runs", 5,
               "--threads", 1)
    expected = python_outputs(model, x, ops=rewritten_model)
    sums = checksums(proc.stdout)
    assert set(sums) == set(expected) == {"logits"}
    got = np.load(tmp_path / "logits.npy")
    assert got.dtype == np.float32 and got.shape == expected["logits"].shape == (3, 10)
    assert np.abs(got - expected["logits"]).max() <= 1e-5
    assert sums["logits"][0] == "[3,10]"
    assert sums["logits"][1] == pytest.approx(float(expected["logits"].astype(np.float64).sum()), abs=1e-4)
    med, q1, q3 = map(float, re.search(r"^time 5 runs: median (\S+) ms, quartiles (\S+) (\S+) ms$",
                                        proc.stdout, re.M).groups())
    assert 0 < q1 <= med <= q3


def test_random_input_is_seeded(haste_run, rewritten, tmp_path):
    ops = haste_onnx.get_library_path()
    a = checksums(run(haste_run, rewritten, "--ops", ops, "--seed", 7, "--runs", 0).stdout)
    b = checksums(run(haste_run, rewritten, "--ops", ops, "--seed", 7, "--runs", 0).stdout)
    c = checksums(run(haste_run, rewritten, "--ops", ops, "--seed", 8, "--runs", 0, "--shape", "2x1x32x32").stdout)
    assert a == b and a["logits"][0] == "[1,10]"  # the model's dynamic batch becomes 1
    assert c["logits"][0] == "[2,10]" and c["logits"][1] != a["logits"][1]


def test_input_by_name_and_npy_shapes(haste_run, rewritten, tmp_path):
    x = np.random.default_rng(5).standard_normal((1, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run(haste_run, rewritten, "--ops", haste_onnx.get_library_path(), "--input", f"input={tmp_path / 'x.npy'}",
        "--save", tmp_path, "--runs", 0)
    assert np.abs(np.load(tmp_path / "logits.npy") - python_outputs(rewritten, x)["logits"]).max() <= 1e-5


def test_clear_errors(haste_run, rewritten, tmp_path):
    np.save(tmp_path / "x64.npy", np.zeros((1, 1, 32, 32)))
    proc = run(haste_run, rewritten, "--ops", haste_onnx.get_library_path(), "--input", tmp_path / "x64.npy",
               check=False)
    assert proc.returncode == 1 and "only float32" in proc.stderr
    proc = run(haste_run, rewritten, check=False)  # HasteConv without the op library
    assert proc.returncode == 1 and "HasteConv" in proc.stderr
    proc = run(haste_run, rewritten, "--bogus", check=False)
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr


def test_runner_is_off_for_pip_installs():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r'option\(HASTE_ONNX_BUILD_RUNNER "[^"]*" OFF\)', cmake)
    assert "HASTE_ONNX_BUILD_RUNNER" not in (ROOT / "pyproject.toml").read_text()
