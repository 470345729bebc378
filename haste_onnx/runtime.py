"""Finding the op library and making onnxruntime sessions that use it."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence

_LIB_NAMES = {"linux": "libhaste_onnx_ops.so", "darwin": "libhaste_onnx_ops.dylib", "win32": "haste_onnx_ops.dll"}


class LibraryNotFoundError(RuntimeError):
    pass


def get_library_path() -> str:
    """Absolute path of the installed custom-op library.

    The package's own folder (haste_onnx/lib) first. When that is missing, as in
    a source tree that shadows the installed package (Python run from the
    repository root), the library file that the installed distribution
    'haste-onnx' recorded as its own, found only in this interpreter's
    site-packages. Never the working directory or an environment variable, so a
    model or a caller cannot redirect which code loads.
    """
    name = _LIB_NAMES.get(sys.platform, _LIB_NAMES["linux"])
    path = Path(__file__).resolve().parent / "lib" / name
    if path.is_file():
        return str(path)
    installed = _installed_library(name)
    if installed is not None:
        return str(installed)
    raise LibraryNotFoundError(
        f"the HasteConv op library is not at {path}, and no installed haste-onnx distribution has it; "
        f"install the package with 'pip install .' from the source tree (or 'make install'), then run Python "
        f"with the environment it went into; from the source tree's root, that environment's installed copy "
        f"is used")


def _installed_library(name: str) -> Optional[Path]:
    """The op library that an installed 'haste-onnx' distribution recorded in its file list, or None.

    Distributions are looked up only in this interpreter's site-packages folders
    (not in sys.path, which may hold the working directory), and the file must be
    the distribution's own haste_onnx/lib/<name> (listed in its RECORD) and exist.
    """
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    wanted = ("haste_onnx", "lib", name)
    for dist in metadata.distributions(name="haste-onnx", path=_site_folders()):
        for file in dist.files or ():
            if tuple(file.parts) != wanted:
                continue
            located = Path(dist.locate_file(file)).resolve()
            if located.is_file() and located.parts[-3:] == wanted:
                return located
    return None


def _site_folders() -> list:
    """This interpreter's site-packages folders (the user's too when enabled), absolute, in search order."""
    import site
    import sysconfig

    folders = []
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    folders += [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
    folders += list(getattr(site, "getsitepackages", lambda: [])())
    unique = []
    for folder in folders:
        if folder and os.path.isabs(folder) and folder not in unique:
            unique.append(folder)
    return unique


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
