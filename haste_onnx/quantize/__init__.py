"""int8 as a tactic of the plan: onnxruntime's own static quantization (QDQ, per-channel), chosen per layer.

`choose_int8` quantizes every layer onnxruntime can, then keeps float the layers whose int8 kernel is not
faster here and the layers that quantization hurts most, until the model meets the fidelity target.
"""
from .ort_int8 import quantize_model, QUANTIZATION  # noqa: F401
from .images import int8_images  # noqa: F401
from .tactic import Int8Choice, Int8Options, choose_int8  # noqa: F401
