"""onnxruntime's static int8 quantization, called on an in-memory model (its tooling, not ours).

QDQ format, per-channel int8 weights, uint8 activations (U8S8: onnxruntime's fast path on x86; int8
activations ran the shared ResNet-18 2.7x slower here), MinMax calibration. onnxruntime fuses
DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv when the session is made.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

import numpy as np
import onnx

QUANTIZATION = {"tool": "onnxruntime.quantization.quantize_static", "quant_format": "QDQ", "per_channel": True,
                "activation_type": "QUInt8", "weight_type": "QInt8", "calibrate_method": "MinMax"}
CALIBRATION_BATCH = 8
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")  # the layers a plan places: those with weights


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose main-graph nodes all have unique names (quantize_static excludes nodes by name)."""
    named = onnx.ModelProto()
    named.CopyFrom(model)
    taken = {n.name for n in named.graph.node if n.name}
    for i, node in enumerate(named.graph.node):
        if not node.name:
            base = f"{node.op_type}_{i}"
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            node.name = name
            taken.add(name)
    return named


def weighted_layers(model: onnx.ModelProto) -> List[str]:
    """Names of the main-graph Conv/Gemm/MatMul nodes whose weight is an initializer: what int8 may take."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type in WEIGHTED_OPS and n.domain in ("", "ai.onnx") and len(n.input) > 1 and n.input[1] in inits]


def float_island(model: onnx.ModelProto, layers: Iterable[str]) -> Set[str]:
    """The nodes to leave unquantized so that `layers` really run float: the layers and the nodes that read
    their outputs. A float layer whose output went straight into a QuantizeLinear (a quantized reader) would
    be found by onnxruntime between a DequantizeLinear and a QuantizeLinear and fused into an int8 kernel
    anyway, its weight quantized per tensor (the WeightBiasQuantization transformer). A reader that is a
    layer itself then runs float too (returned among the nodes)."""
    readers: Dict[str, List[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    by_name = {n.name: n for n in model.graph.node}
    nodes = set(layers)
    for name in list(nodes):
        node = by_name.get(name)
        for out in (node.output if node is not None else []):
            nodes.update(r.name for r in readers.get(out, []))
    return nodes


def quantize_model(model: onnx.ModelProto, calibration: np.ndarray, exclude: Iterable[str] = (),
                   input_name: Optional[str] = None) -> onnx.ModelProto:
    """`model` (nodes named: `name_nodes`) quantized by onnxruntime, calibrated on `calibration` (already in
    the model's input format), the nodes named in `exclude` left float (with their readers: `float_island`)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = input_name or model.graph.input[0].name
    batches = [{name: np.ascontiguousarray(calibration[i:i + CALIBRATION_BATCH])}
               for i in range(0, len(calibration), CALIBRATION_BATCH)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="haste-int8-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        # quantize_static warns through the root logger on every call that pre-processing is advised
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))
        try:
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=sorted(float_island(model, exclude)))
        finally:
            root.setLevel(level)
        return keep_float(onnx.load(str(dst)), exclude)


ZERO = "haste_int8_zero"


def keep_float(model: onnx.ModelProto, layers: Iterable[str]) -> onnx.ModelProto:
    """Make the float `layers` of a quantized model stay float in onnxruntime: a Relu reading one of them
    becomes Max(x, 0), the same function. onnxruntime drops a Relu before a QuantizeLinear whose zero point is
    the lowest value (ReluQuantFusion), and then quantizes the weight of the Conv it finds between a
    DequantizeLinear and that QuantizeLinear per tensor and fuses it into int8 (WeightBiasQuantization):
    the layer kept float would run int8 after all, worse than per channel."""
    layers = set(layers)
    produced_by_layer = {o for n in model.graph.node if n.name in layers for o in n.output}
    changed = False
    for node in model.graph.node:
        if node.op_type == "Relu" and node.input and node.input[0] in produced_by_layer:
            node.op_type = "Max"
            node.input.append(ZERO)
            changed = True
    if changed and not any(i.name == ZERO for i in model.graph.initializer):
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((), np.float32), ZERO))
    return model
