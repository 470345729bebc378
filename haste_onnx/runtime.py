"""Finding the op library and making onnxruntime sessions that use it."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

_LIB_NAMES = {"linux": "libhaste_onnx_ops.so", "darwin": "libhaste_onnx_ops.dylib", "win32": "haste_onnx_ops.dll"}


class LibraryNotFoundError(RuntimeError):
    pass


def get_library_path() -> str:
    """Absolute path of the custom-op library installed inside this package.

    Only the package's own folder is searched: never the working directory or an
    environment variable, so a model or a caller cannot redirect which code loads.
    """
    name = _LIB_NAMES.get(sys.platform, _LIB_NAMES["linux"])
    path = Path(__file__).resolve().parent / "lib" / name
    if not path.is_file():
        raise LibraryNotFoundError(
            f"the HasteConv op library is not installed at {path}; reinstall with 'pip install .' from the source tree")
    return str(path)


def session_options(threads: Optional[int] = None, optimization_level=None):
    """onnxruntime.SessionOptions with the HasteConv library registered."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.register_custom_ops_library(get_library_path())
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if optimization_level is not None:
        opts.graph_optimization_level = optimization_level
    return opts


def inference_session(model, threads: Optional[int] = None, providers: Optional[Sequence[str]] = None,
                      sess_options=None):
    """An onnxruntime.InferenceSession for a model path, bytes or ModelProto, with the library registered."""
    import onnxruntime as ort

    if not isinstance(model, (str, bytes, Path)):
        model = model.SerializeToString()
    opts = sess_options if sess_options is not None else session_options(threads)
    if sess_options is not None:
        opts.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(str(model) if isinstance(model, Path) else model, sess_options=opts,
                                providers=list(providers) if providers else ["CPUExecutionProvider"])
