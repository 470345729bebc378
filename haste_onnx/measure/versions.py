"""The software and machine a measurement ran on, recorded beside every result."""
from __future__ import annotations

import os
import platform


def versions() -> dict:
    """haste-onnx, onnxruntime, onnx and numpy versions."""
    import numpy as np
    import onnx
    import onnxruntime

    from .. import __version__

    return {"haste_onnx": __version__, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__}


def machine_versions() -> dict:
    """`versions()` with the Python version, the machine's architecture and its CPU count."""
    return {**versions(), "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
