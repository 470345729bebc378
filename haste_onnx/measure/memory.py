"""Peak memory of a model's session, measured in a child process of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx


def peak_memory(model: onnx.ModelProto, x: np.ndarray, threads: int, runs: int = 3) -> dict:
    """Peak resident memory (MB) of a child process that loads `model` and runs batch `x` `runs` times.

    `peak_mb`: the child's peak resident size, whole process (Python, numpy
    and onnxruntime included). On Linux it is read from /proc/self/status
    (VmHWM), not from `ru_maxrss`: a child started by fork/vfork + exec
    inherits the parent's high-water mark in `ru_maxrss` (RUSAGE_CHILDREN
    too), which would hide the model. `session_mb`: on Linux, the peak since
    just before the session was made (VmHWM reset through
    /proc/self/clear_refs) minus the resident size then: what the session
    and its runs added; None where that cannot be read.
    """
    from ..runtime import get_library_path

    with tempfile.TemporaryDirectory(prefix="haste-bench-mem-") as tmp:
        path, data = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "batch.npy")
        large = model.ByteSize() > 1_800_000_000
        onnx.save_model(model, path, save_as_external_data=large, location="model.onnx.data" if large else None)
        np.save(data, x)
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("memory_child.py")), path, data, get_library_path(), str(threads),
                               str(runs)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory child failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["hwm_kb"] is not None:
        peak_kb = max(out["hwm_kb"], out["hwm_before_kb"] or 0) if out["reset"] else out["hwm_kb"]
        source = "VmHWM"
    else:  # not Linux: ru_maxrss (bytes on macOS, KiB elsewhere)
        peak_kb = out["maxrss_kb"] / (1024 if sys.platform == "darwin" else 1)
        source = "ru_maxrss"
    session = None
    if out["reset"] and out["hwm_kb"] is not None and out["rss_before_kb"] is not None:
        session = (out["hwm_kb"] - out["rss_before_kb"]) / 1024
    return {"peak_mb": peak_kb / 1024, "session_mb": session, "runs": runs, "source": source}
