"""Finding (or building) the C++ runner examples/cpp/haste_run for the tests."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parent.parent


def ort_library() -> Path:
    """The libonnxruntime.so of the onnxruntime wheel these tests import."""
    found = sorted((Path(ort.__file__).parent / "capi").glob("libonnxruntime.so*"))
    if not found:
        pytest.fail(f"no libonnxruntime.so in {Path(ort.__file__).parent / 'capi'}")
    return found[-1]


def ort_headers() -> str | None:
    """Headers an earlier build of this tree fetched, else None (CMake finds or fetches them)."""
    if os.environ.get("ORT_INCLUDE_DIR"):
        return os.environ["ORT_INCLUDE_DIR"]
    for d in sorted(ROOT.glob("build/*/_ort_headers/extract/usr/include/onnxruntime")):
        if (d / "onnxruntime_cxx_api.h").is_file():
            return str(d)
    return None


def runner() -> Path:
    """$HASTE_ONNX_RUNNER (set by `make test`, which builds it: must exist), else a
    build in build/runner-test (skipped only where there is no cmake or C++ compiler)."""
    given = os.environ.get("HASTE_ONNX_RUNNER")
    if given:
        path = Path(given)
        if not path.is_file():
            pytest.fail(f"HASTE_ONNX_RUNNER={given} does not exist")
        return path
    if not shutil.which("cmake") or not (shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")):
        pytest.skip("no cmake or C++ compiler to build examples/cpp/haste_run (make test builds it)")
    build = ROOT / "build" / "runner-test"
    args = ["cmake", "-S", str(ROOT), "-B", str(build), "-DHASTE_ONNX_BUILD_RUNNER=ON",
            f"-DHASTE_ORT_LIBRARY={ort_library()}"]
    if ort_headers():
        args.append(f"-DORT_INCLUDE_DIR={ort_headers()}")
    subprocess.run(args, check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "haste_run"], check=True, capture_output=True)
    return build / "examples" / "cpp" / "haste_run"


def rewrite(src: Path, dst: Path, *args: str) -> Path:
    """haste-onnx rewrite SRC DST ARGS (no probe when ARGS give -L)."""
    from haste_onnx.cli import main
    assert main(["rewrite", str(src), str(dst), "--force", *args]) == 0
    return dst


def bundled_rewritten(directory: Path) -> Path:
    """The bundled ResNet-20 rewritten with one L=12 everywhere."""
    return rewrite(ROOT / "models" / "resnet20_fmnist.onnx", directory / "resnet20_l12.onnx", "-L", "12")
