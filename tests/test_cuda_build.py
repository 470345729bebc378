"""The op library built with CUDA, checked on a machine without a GPU (scripts/cuda_build_check.sh).

It must carry device code (SASS for each configured architecture, PTX for the newest), link the CUDA runtime
statically, and still load and run on the CPU in a CPU-only onnxruntime. Skips for a library built without CUDA.
"""
from __future__ import annotations

import os
import struct
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

import haste_onnx
from cuda_entry import Plan, library_has_cuda
from op_cases import Case, haste_model, make_arrays, reference, relative_error

pytestmark = pytest.mark.skipif(not library_has_cuda(),
                                reason="the op library was built without CUDA (HASTE_ONNX_CUDA=OFF)")

_FATBIN_MAGIC = 0xBA55ED50


def _sections(data: bytes) -> dict:
    """ELF64 section name -> (offset, size)."""
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx][4]
    return {data[names + h[0]:data.index(b"\0", names + h[0])].decode(): (h[4], h[5]) for h in headers}


def fatbin_entries(path: str) -> list:
    """(kind, arch) of every image in the library's .nv_fatbin: kind 'sass' or 'ptx', arch e.g. 90."""
    data = open(path, "rb").read()
    offset, size = _sections(data)[".nv_fatbin"]
    blob, pos, entries = data[offset:offset + size], 0, []
    while pos + 16 <= len(blob):
        magic, _, header, fat = struct.unpack_from("<IHHQ", blob, pos)
        if magic != _FATBIN_MAGIC:
            break
        entry, end = pos + header, pos + header + fat
        while entry < end:
            kind, _, entry_header, entry_size = struct.unpack_from("<HHIQ", blob, entry)
            arch = struct.unpack_from("<I", blob, entry + 28)[0]
            entries.append(({1: "ptx", 2: "sass"}.get(kind, str(kind)), arch))
            entry += entry_header + entry_size
        pos = (end + 7) // 8 * 8
    return entries


def _expected_archs():
    """The configured architectures (CMake syntax, '75-real;90'), as [(number, real_only)]."""
    spec = os.environ.get("HASTE_CUDA_EXPECT_ARCHS", "")
    out = []
    for item in filter(None, spec.split(";")):
        number, _, suffix = item.partition("-")
        out.append((int(number), suffix == "real"))
    return out


def test_library_carries_device_code_for_each_architecture():
    entries = fatbin_entries(haste_onnx.get_library_path())
    sass = {a for k, a in entries if k == "sass"}
    ptx = {a for k, a in entries if k == "ptx"}
    assert sass, f"no SASS in the library's fatbin: {entries}"
    for number, real_only in _expected_archs() or [(max(sass), False)]:
        assert number in sass, f"no SASS for sm_{number}: {sorted(sass)}"
        if not real_only:
            assert number in ptx, f"no PTX for compute_{number}: {sorted(ptx)}"


def test_cuda_runtime_is_linked_statically():
    out = subprocess.run(["ldd", haste_onnx.get_library_path()], capture_output=True, text=True).stdout
    assert "libcudart" not in out and "libcuda." not in out, out


def test_cuda_build_loads_and_runs_on_cpu_in_cpu_only_onnxruntime():
    assert "CUDAExecutionProvider" not in ort.get_available_providers() or pytest.skip(
        "this onnxruntime has CUDA; the point is the CPU-only one")
    case = Case(batch=2, in_channels=32, out_channels=16, height=10, width=10, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=8, repeated_channels=8)
    x, w, b, h = make_arrays(case)
    sess = ort.InferenceSession(haste_model(case, w, b, h).SerializeToString(), haste_onnx.session_options(threads=1),
                                providers=["CPUExecutionProvider"])
    assert relative_error(sess.run(None, {"X": x})[0], reference(case, x, w, b, h)) <= 1e-4


def test_c_entry_plans_on_the_host_and_refuses_bad_attributes():
    plan = Plan((2, 64, 32, 32), (64, 64, 3, 3), (12, 36), pads=(1, 1, 1, 1))
    assert plan.y_shape == (2, 64, 32, 32) and plan.workspace_bytes > 0
    tile_bytes, codes_offset, count_offset, per_chunk, tasks = plan.layout
    assert tasks == 2 * 8 * 8 and per_chunk == tasks and codes_offset < count_offset < tile_bytes
    with pytest.raises(ValueError, match="hyperplanes"):
        Plan((2, 64, 32, 32), (64, 64, 3, 3), (12, 35), pads=(1, 1, 1, 1))
    # A patch and kernel too large for the kernel's shared memory are refused with the reason.
    with pytest.raises(ValueError, match="CUDA kernel"):
        Plan((1, 4, 600, 600), (4, 4, 3, 3), (4, 102 * 102), pads=(1, 1, 1, 1), tile=(100, 100))
    assert np.dtype(np.uint64).itemsize == 8
