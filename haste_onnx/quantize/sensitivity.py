"""Which layers quantization hurts most: the error each layer adds, measured on the probe images.

The float model and its int8 version are run with every weighted layer's output exposed (onnxruntime then
runs the int8 layers as DequantizeLinear -> float op -> QuantizeLinear: the same rounding, unfused). A
layer's error is the relative error of its output, ||y8 - y|| / ||y||, averaged over the images; what it
adds is that error less the largest error of the layers feeding it (errors carried from upstream are not
its own). The int8 model keeps the float model's node names (onnxruntime's quantizer does); a layer's
output may be renamed there (an activation folded into the QuantizeLinear), so outputs are matched by node.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import onnx

EPS = 1e-30


def _output_of(model: onnx.ModelProto, names: List[str]) -> Dict[str, str]:
    by_name = {n.name: n for n in model.graph.node}
    return {name: by_name[name].output[0] for name in names if name in by_name and by_name[name].output}


def _with_outputs(model: onnx.ModelProto, tensors: List[str]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    for t in tensors:
        if t not in present:
            out.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
            present.add(t)
    return out


def _run(model: onnx.ModelProto, tensors: List[str], images: np.ndarray, threads) -> Dict[str, np.ndarray]:
    from ..runtime import inference_session

    session = inference_session(_with_outputs(model, tensors), threads=threads)
    feed = session.get_inputs()[0].name
    runs = [session.run(tensors, {feed: images[i:i + 8]}) for i in range(0, len(images), 8)]
    return {t: np.concatenate([r[k] for r in runs]) for k, t in enumerate(tensors)}


def upstream_layers(model: onnx.ModelProto, layers: List[str]) -> Dict[str, List[str]]:
    """For each layer: the layers whose outputs reach its first input without passing another layer."""
    producer = {o: n for n in model.graph.node for o in n.output}
    wanted = set(layers)
    found: Dict[str, List[str]] = {}
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        seen, stack, ups = set(), [node.input[0]], []
        while stack:
            tensor = stack.pop()
            p = producer.get(tensor)
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            if p.name in wanted:
                ups.append(p.name)
            else:
                stack.extend(i for i in p.input if i)
        found[node.name] = ups
    return found


def layer_errors(float_model: onnx.ModelProto, int8_model: onnx.ModelProto, layers: List[str],
                 images: np.ndarray, threads=None) -> Dict[str, dict]:
    """{layer: {"error": relative error of its output, "added": what it adds}} on `images`."""
    f_out, q_out = _output_of(float_model, layers), _output_of(int8_model, layers)
    common = [n for n in layers if n in f_out and n in q_out]
    ref = _run(float_model, [f_out[n] for n in common], images, threads)
    got = _run(int8_model, [q_out[n] for n in common], images, threads)
    errors = {}
    for n in common:
        a = ref[f_out[n]].reshape(len(images), -1).astype(np.float64)
        b = got[q_out[n]].reshape(len(images), -1).astype(np.float64)
        if a.shape != b.shape:  # an output changed by quantization in a way we cannot compare: assume the worst
            errors[n] = float("inf")
            continue
        errors[n] = float(np.mean(np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(a, axis=1), EPS)))
    ups = upstream_layers(float_model, common)
    return {n: {"error": errors[n], "added": errors[n] - max((errors[u] for u in ups[n] if u in errors), default=0.0)}
            for n in common}


def most_hurt_first(errors: Dict[str, dict]) -> List[str]:
    """Layers by the error they add, largest first."""
    return sorted(errors, key=lambda n: -errors[n]["added"])
