"""haste-onnx: HASTE (hashing for tractable efficiency) for ONNX models and ONNX Runtime."""
from .runtime import get_library_path, inference_session, session_options

__version__ = "0.1.0"
__all__ = ["get_library_path", "inference_session", "session_options", "__version__"]
