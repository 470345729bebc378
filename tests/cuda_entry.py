"""The CUDA kernel through the library's plain C entry point (custom_op/haste_cuda_entry.h), from PyTorch.

For the GPU tests and the benchmark on machines with PyTorch but no onnxruntime-gpu. `cuda_unavailable()`
says why the CUDA tests cannot run here (None when they can).
"""
from __future__ import annotations

import ctypes
import subprocess
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np

import haste_onnx

_AUTO_PAD = {"NOTSET": 0, "VALID": 1, "SAME_UPPER": 2, "SAME_LOWER": 3}
ENTRY_VERSION = 1


class HasteCudaCall(ctypes.Structure):
    _fields_ = [("x_shape", ctypes.c_int64 * 4), ("w_shape", ctypes.c_int64 * 4), ("h_shape", ctypes.c_int64 * 2),
                ("pads", ctypes.c_int64 * 4), ("strides", ctypes.c_int64 * 2), ("dilations", ctypes.c_int64 * 2),
                ("tile", ctypes.c_int64 * 2), ("group", ctypes.c_int64), ("auto_pad", ctypes.c_int32),
                ("centering", ctypes.c_int32), ("magnitude_split", ctypes.c_int32),
                ("merge_project", ctypes.c_int32), ("clamp", ctypes.c_int32), ("out_min", ctypes.c_float),
                ("out_max", ctypes.c_float), ("x", ctypes.c_void_p), ("w", ctypes.c_void_p), ("b", ctypes.c_void_p),
                ("h", ctypes.c_void_p), ("z", ctypes.c_void_p), ("y", ctypes.c_void_p), ("stats", ctypes.c_void_p)]


def library_has_cuda(path: Optional[str] = None) -> bool:
    """Whether the op library was built with the CUDA kernel (it then exports the C entry point)."""
    path = path or haste_onnx.get_library_path()
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
    return "haste_cuda_conv" in out


@lru_cache(maxsize=None)
def _lib():
    lib = ctypes.CDLL(haste_onnx.get_library_path())
    size_t_p = ctypes.POINTER(ctypes.c_size_t)
    lib.haste_cuda_plan.argtypes = [ctypes.POINTER(HasteCudaCall), ctypes.POINTER(ctypes.c_int64), size_t_p,
                                    ctypes.c_char_p, ctypes.c_size_t]
    lib.haste_cuda_conv.argtypes = [ctypes.POINTER(HasteCudaCall), ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                    ctypes.c_char_p, ctypes.c_size_t]
    lib.haste_cuda_layout.argtypes = [ctypes.POINTER(HasteCudaCall), size_t_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.haste_cuda_entry_version.restype = ctypes.c_int
    if lib.haste_cuda_entry_version() != ENTRY_VERSION:
        raise RuntimeError(f"the op library's CUDA entry is version {lib.haste_cuda_entry_version()}, "
                           f"tests expect {ENTRY_VERSION}")
    return lib


def cuda_unavailable() -> Optional[str]:
    """Why the CUDA kernel cannot be run here, or None."""
    try:
        path = haste_onnx.get_library_path()
    except Exception as e:  # noqa: BLE001
        return f"no op library: {e}"
    if not library_has_cuda(path):
        return "the op library was built without CUDA (HASTE_ONNX_CUDA=OFF); build with HASTE_ONNX_CUDA=ON"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (the CUDA tests drive the kernel through torch tensors)"
    if not torch.cuda.is_available():
        return "no CUDA GPU here (torch.cuda.is_available() is False)"
    return None


class Plan:
    """One HasteConv call's attributes and shapes, ready to run on torch CUDA tensors."""

    def __init__(self, x_shape: Sequence[int], w_shape: Sequence[int], h_shape: Sequence[int], *,
                 pads=(0, 0, 0, 0), strides=(1, 1), dilations=(1, 1), tile=(4, 4), group=1, auto_pad="NOTSET",
                 centering=True, magnitude_split=False, merge="mean", clamp: Optional[Tuple[float, float]] = None,
                 bias=True):
        c = HasteCudaCall()
        c.x_shape[:] = list(x_shape)
        c.w_shape[:] = list(w_shape)
        c.h_shape[:] = list(h_shape)
        c.pads[:] = list(pads)
        c.strides[:] = list(strides)
        c.dilations[:] = list(dilations)
        c.tile[:] = list(tile)
        c.group = group
        c.auto_pad = _AUTO_PAD[auto_pad]
        c.centering, c.magnitude_split, c.merge_project = int(centering), int(magnitude_split), int(merge == "project")
        c.clamp = int(clamp is not None)
        c.out_min, c.out_max = (clamp if clamp is not None else (0.0, 0.0))
        c.b = 1 if bias else None  # only whether a bias is given matters for the plan
        self.call = c
        err = ctypes.create_string_buffer(512)
        y_shape = (ctypes.c_int64 * 4)()
        size = ctypes.c_size_t()
        if _lib().haste_cuda_plan(ctypes.byref(c), y_shape, ctypes.byref(size), err, 512):
            raise ValueError(err.value.decode())
        self.y_shape = tuple(y_shape)
        self.workspace_bytes = size.value
        layout = (ctypes.c_size_t * 5)()
        if _lib().haste_cuda_layout(ctypes.byref(c), layout, err, 512):
            raise ValueError(err.value.decode())
        self.layout = tuple(layout)

    def run(self, x, w, b, h, z=None, stats=None, y=None, workspace=None, stream=None):
        """Enqueues the call on torch tensors (float32, contiguous, on one CUDA device); returns y."""
        import torch
        c = self.call
        if y is None:
            y = torch.empty(self.y_shape, dtype=torch.float32, device=x.device)
        if workspace is None:
            workspace = torch.empty(max(1, self.workspace_bytes), dtype=torch.uint8, device=x.device)
        for name, t in (("x", x), ("w", w), ("b", b), ("h", h), ("z", z)):
            assert t is None or (t.is_cuda and t.dtype == torch.float32 and t.is_contiguous()), name
        c.x, c.w, c.h, c.y = x.data_ptr(), w.data_ptr(), h.data_ptr(), y.data_ptr()
        c.b = b.data_ptr() if b is not None else None
        c.z = z.data_ptr() if z is not None else None
        c.stats = stats.data_ptr() if stats is not None else None
        stream = stream if stream is not None else torch.cuda.current_stream(x.device)
        err = ctypes.create_string_buffer(512)
        if _lib().haste_cuda_conv(ctypes.byref(c), ctypes.c_void_p(workspace.data_ptr()), workspace.numel(),
                                  ctypes.c_void_p(stream.cuda_stream), err, 512):
            raise RuntimeError(err.value.decode())
        self.last_workspace = workspace
        return y

    def codes(self, workspace) -> np.ndarray:
        """The hash codes of every tile task of the last call, uint64 [tasks, C_in/group] (one chunk only)."""
        tile_bytes, codes_offset, _, per_chunk, tasks = self.layout
        assert per_chunk >= tasks, "the call was cut into chunks; codes of earlier chunks are overwritten"
        raw = workspace.cpu().numpy()
        cg = self.call.w_shape[1]
        out = np.empty((tasks, cg), np.uint64)
        for t in range(tasks):
            start = t * tile_bytes + codes_offset
            out[t] = raw[start:start + 8 * cg].view(np.uint64)
        return out


def plan_for_case(case, x_shape=None) -> Plan:
    """A Plan for an op_cases.Case."""
    from haste_onnx.op import patch_size
    ph, pw = patch_size(case.kernel, case.strides, case.dilations, case.tile)
    return Plan(x_shape or (case.batch, case.in_channels, case.height, case.width),
                (case.out_channels, case.in_channels // case.group) + tuple(case.kernel),
                (case.hyperplanes, ph * pw), pads=case.pads if case.auto_pad == "NOTSET" else (0, 0, 0, 0), strides=case.strides, dilations=case.dilations,
                tile=case.tile, group=case.group, auto_pad=case.auto_pad, centering=case.centering,
                magnitude_split=case.magnitude_split, merge=case.merge, bias=case.bias)
