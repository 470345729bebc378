"""The sessions benchmarks time: all graph optimisations, N intra-op threads, one inter-op thread, the op
library registered (also for the original, so both sides run the same onnxruntime set-up)."""
from __future__ import annotations

from typing import Optional

import onnx


def _make_session(model: onnx.ModelProto, opts):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def bench_session(model: onnx.ModelProto, threads: int, profile_prefix: Optional[str] = None):
    import onnxruntime as ort

    from ..runtime import session_options

    opts = session_options(threads=threads, optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return _make_session(model, opts)
