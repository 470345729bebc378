"""The shared library: where it is, what it exports, how it loads and fails."""
import os
import shutil
import subprocess
import sys
import textwrap

import onnxruntime as ort
import pytest

import haste_onnx
from op_cases import Case, haste_model, make_arrays


def test_library_path_is_an_existing_file_inside_the_package():
    path = haste_onnx.get_library_path()
    assert os.path.isabs(path) and os.path.isfile(path)
    assert os.path.dirname(os.path.dirname(path)) == os.path.dirname(os.path.abspath(haste_onnx.__file__))


@pytest.mark.skipif(shutil.which("nm") is None, reason="binutils' nm is not installed")
def test_library_exports_only_register_custom_ops():
    out = subprocess.run(["nm", "-D", "--defined-only", haste_onnx.get_library_path()], capture_output=True,
                         text=True, check=True).stdout
    symbols = {line.split()[-1] for line in out.splitlines() if line.strip()}
    # A build with CUDA (cmake/Cuda.cmake) also exports the C entry point of custom_op/haste_cuda_entry.h.
    cuda_entry = {"haste_cuda_plan", "haste_cuda_conv", "haste_cuda_entry_version", "haste_cuda_layout"}
    assert symbols in ({"RegisterCustomOps"}, {"RegisterCustomOps"} | cuda_entry)


def test_library_does_not_link_onnxruntime():
    out = subprocess.run(["ldd", haste_onnx.get_library_path()], capture_output=True, text=True).stdout
    assert "onnxruntime" not in out


def test_model_runs_in_a_fresh_process(tmp_path):
    case = Case(batch=1, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1))
    x, w, b, h = make_arrays(case)
    model_path = tmp_path / "m.onnx"
    model_path.write_bytes(haste_model(case, w, b, h).SerializeToString())
    script = textwrap.dedent(f"""
        import numpy as np, onnxruntime as ort, haste_onnx
        opts = ort.SessionOptions()
        opts.register_custom_ops_library(haste_onnx.get_library_path())
        sess = ort.InferenceSession({str(model_path)!r}, opts, providers=["CPUExecutionProvider"])
        y = sess.run(None, {{"X": np.ones((2, 16, 8, 8), np.float32)}})[0]
        print(y.shape, bool(np.isfinite(y).all()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 8, 8, 8) True"


def test_model_fails_clearly_without_the_library():
    case = Case(batch=1, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3))
    x, w, b, h = make_arrays(case)
    with pytest.raises(Exception) as info:
        ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), providers=["CPUExecutionProvider"])
    assert "HasteConv" in str(info.value) and "haste" in str(info.value)


@pytest.mark.parametrize("change,message", [
    ("channels", "W expects 16 input channels"),
    ("hyperplanes", "hyperplanes must have shape [L, 36]"),
    ("group", "group 3 does not divide"),
])
def test_bad_shapes_fail_with_the_node_name(change, message, run_haste):
    import numpy as np
    case = Case(batch=1, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1))
    x, w, b, h = make_arrays(case)
    if change == "channels":
        x = np.zeros((1, 12, 8, 8), np.float32)
    elif change == "hyperplanes":
        h = h[:, :30].copy()
    else:
        case.group = 3
    with pytest.raises(Exception) as info:
        run_haste(haste_model(case, w, b, h, x_shape=[None] * 4), {"X": x})
    text = str(info.value)
    assert "haste_node" in text and message in text


def test_bad_attribute_fails_at_session_creation():
    case = Case(batch=1, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3), tile=(0, 4))
    x, w, b, h = make_arrays(case)
    h = h  # shape check comes later; the tile attribute is refused first
    with pytest.raises(Exception) as info:
        ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(),
                             providers=["CPUExecutionProvider"])
    assert "tile must be positive" in str(info.value)


# Other onnxruntime versions, each a folder holding only that onnxruntime package
# (pip install --no-deps --target FOLDER onnxruntime==V; `make test` makes them in
# .venv-ort/V): this interpreter runs with the folder first on PYTHONPATH, so
# numpy and the rest come from the test environment.
OTHER_ORT_SITES = [p.strip() for p in os.environ.get("HASTE_ONNX_OTHER_ORT_SITES", "").split(os.pathsep) if p.strip()]


@pytest.mark.skipif(not OTHER_ORT_SITES,
                    reason="set HASTE_ONNX_OTHER_ORT_SITES (make test does) to test other onnxruntime versions")
@pytest.mark.parametrize("site", OTHER_ORT_SITES)
def test_library_in_other_onnxruntime_versions(site, tmp_path):
    """Loads in onnxruntime >= 1.21 and computes the same; older ones get an error naming both versions."""
    import numpy as np
    site = os.path.realpath(site)
    case = Case(batch=2, in_channels=16, out_channels=8, height=9, width=9, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=5, repeated_channels=4)
    x, w, b, h = make_arrays(case)
    model_path, x_path, y_path = tmp_path / "m.onnx", tmp_path / "x.npy", tmp_path / "y.npy"
    model_path.write_bytes(haste_model(case, w, b, h).SerializeToString())
    np.save(x_path, x)
    script = textwrap.dedent(f"""
        import numpy as np, onnxruntime as ort
        print(ort.__version__)
        print(ort.__file__)
        opts = ort.SessionOptions()
        try:
            opts.register_custom_ops_library({haste_onnx.get_library_path()!r})
        except Exception as e:
            print("ERROR", e)
            raise SystemExit(0)
        sess = ort.InferenceSession({str(model_path)!r}, opts, providers=["CPUExecutionProvider"])
        np.save({str(y_path)!r}, sess.run(None, {{"X": np.load({str(x_path)!r})}})[0])
    """)
    env = dict(os.environ, PYTHONPATH=site)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    version, module = out.stdout.splitlines()[:2]
    assert os.path.dirname(os.path.dirname(os.path.realpath(module))) == site  # that folder's, not ours
    major, minor = (int(v) for v in version.split(".")[:2])
    if (major, minor) >= (1, 21):
        expected = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(),
                                        providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
        assert np.array_equal(np.load(y_path), expected)
    else:
        assert "needs onnxruntime >= 1.21" in out.stdout and f"this onnxruntime is {version}" in out.stdout
