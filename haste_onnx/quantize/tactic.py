"""int8 per layer: where onnxruntime's int8 kernel is faster and the model stays within the fidelity target.

1. Every weighted layer (Conv, Gemm, MatMul with an initializer weight) is quantized (`ort_int8`),
   calibrated on the probe images (data-free) or the user's calibration folder (data-light).
2. Time: the float and the int8 model are profiled on this machine (`layer_times`); the layers whose int8
   kernel is clearly slower than their float one stay float, if the whole model is then faster than all
   int8 in at least 3 of 4 pairs (timed, alternating: a float layer among int8 ones also costs a
   QuantizeLinear after it).
3. Fidelity: the int8 model is compared with the float one on the check images (`probe.fidelity`). While
   it misses the target, the layers that add the most error (`sensitivity`) stay float: the fewest such
   layers that meet the target are found by doubling, then bisection (each try quantizes and runs again).
4. The whole int8 model is timed against the float one (alternating); not faster: no int8 at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import onnx

from ..probe.fidelity import FidelityCheck, FidelityTarget, fidelity_text
from ..probe.layer_time import TimingContext
from .layer_times import first_batch, layer_times
from .ort_int8 import QUANTIZATION, float_island, name_nodes, quantize_model, weighted_layers
from .sensitivity import layer_errors, most_hurt_first

METADATA_KEY = "haste_onnx.int8"
# Data-free int8 kept the shared Fashion-MNIST models' predictions, but changed many of real photo models'
# (docs/suite.md: MobileNetV2 90% -> 45% top-1 with the check met on synthetic images): say so every time.
SYNTHETIC_ONLY = ("\nwarning: int8 was calibrated and checked on synthetic images only; on real photos data-free int8 "
                  "changed many predictions of some models (docs/int8.md): check yours with `haste-onnx compare "
                  "ORIGINAL OUT --images DIR`, or calibrate with --calibration DIR")
SENSITIVITY_IMAGES = 16  # images the per-layer errors are measured on
SLOWER = "its int8 kernel is slower than the float one here"
# A layer stays float for speed only when its int8 kernel is clearly slower: a float layer between int8 ones
# also costs a DequantizeLinear and a QuantizeLinear, and one profile of small kernels is noisy.
SLOWER_BY, SLOWER_MS = 1.1, 0.02
HURTS = "kept float: quantizing it costs the most fidelity"
READS_FLOAT = "reads a layer kept float directly (else onnxruntime would fuse that one into int8)"


@dataclass(frozen=True)
class Int8Options:
    fidelity: FidelityTarget = field(default_factory=FidelityTarget)
    timing: TimingContext = field(default_factory=TimingContext)
    threads: Optional[int] = 2  # threads of the fidelity runs (timing has its own)
    timed: bool = True  # False: no layer timing and no whole-model speed check (choices by fidelity alone)


@dataclass
class Int8Choice:
    model: Optional[onnx.ModelProto]  # the quantized model (None: int8 not used)
    layers: Dict[str, dict]  # layer -> {"tactic": "int8" | "float", "reason", "float_ms", "int8_ms", "added_error"}
    calibration: str  # what the calibration images were
    fidelity: Optional[dict] = None  # the chosen int8 model vs the float one, on the check images
    target: Optional[dict] = None
    search: List[dict] = field(default_factory=list)  # tries: layers kept float, fidelity, met
    speed: Optional[dict] = None  # whole model, float vs int8, alternating
    reason: Optional[str] = None  # why int8 is not used, when it is not
    check_text: Optional[str] = None  # what the check images were
    speed_islands: Optional[dict] = None  # all int8 vs the slower layers float, timed (None: no such layer)

    def quantized(self) -> List[str]:
        return [n for n, row in self.layers.items() if row["tactic"] == "int8"] if self.model is not None else []

    def summary_line(self) -> str:
        if self.model is None:
            return f"int8: not used: {self.reason}"
        kept = {n: row["reason"] for n, row in self.layers.items() if row["tactic"] == "float"}
        which = (f"{len(self.quantized())} of {len(self.layers)} weighted layer(s) quantized "
                 f"({', '.join(sorted(set(kept.values())))} for the {len(kept)} kept float)" if kept
                 else f"all {len(self.layers)} weighted layer(s) quantized")
        speed = self.speed["ratio"] if self.speed else None
        timed = (f"int8 model {speed['median']:.2f}x the float one [{speed['p25']:.2f}x-{speed['p75']:.2f}x]"
                 if speed else "not timed")
        data_free = "(data-free)" in self.calibration.split(":")[0]
        return (f"int8: {which} with onnxruntime's quantize_static (QDQ, per-channel, U8S8), calibrated on "
                f"{self.calibration}; {fidelity_text(self.fidelity)}; {timed}" + (SYNTHETIC_ONLY if data_free else ""))

    def table(self) -> str:
        """Per weighted layer: the tactic, its float and int8 kernel times here, and why it stayed float."""
        def ms(v):
            return "-" if v is None else f"{v:.3f}"

        head = ("layer", "tactic", "float ms", "int8 ms", "note")
        body = [(n, r["tactic"] if self.model is not None else "float", ms(r["float_ms"]), ms(r["int8_ms"]),
                 r["reason"] + (f" (adds error {r['added_error']:.4f})" if r.get("added_error") is not None
                                and r["tactic"] == "float" else ""))
                for n, r in self.layers.items()]
        widths = [max(len(str(x[i])) for x in [head] + body) for i in range(4)]
        lines = ["  ".join(str(x[i]).ljust(widths[i]) for i in range(4)) + "  " + x[4] for x in [head] + body]
        return "\n".join(line.rstrip() for line in lines)

    def record(self) -> None:
        """The tactic in the quantized model's metadata (`info` shows it): the layers and why some are float."""
        import json

        if self.model is None:
            return
        doc = {"quantization": QUANTIZATION, "calibration": self.calibration,
               "layers": {n: r["tactic"] if r["tactic"] == "int8" else f"float: {r['reason']}"
                          for n, r in self.layers.items()}}
        for prop in list(self.model.metadata_props):
            if prop.key == METADATA_KEY:
                self.model.metadata_props.remove(prop)
        self.model.metadata_props.add(key=METADATA_KEY, value=json.dumps(doc, separators=(",", ":")))

    def to_json(self) -> dict:
        return {"used": self.model is not None, "check_images": self.check_text, "speed_islands": self.speed_islands, "reason": self.reason, "quantization": QUANTIZATION,
                "calibration": self.calibration, "layers": self.layers, "fidelity": self.fidelity,
                "target": self.target, "search": self.search, "speed": self.speed}


def choose_int8(model: onnx.ModelProto, calibration: np.ndarray, calibration_text: str, check_images: np.ndarray,
                options: Int8Options = Int8Options(),
                progress: Optional[Callable[[str], None]] = None) -> Int8Choice:
    """The int8 tactic for `model` (see the module docstring). `calibration` and `check_images` are in the
    model's input format; the check images should not be the calibration images."""
    from ..probe.planner import not_slower, time_models

    say = progress or (lambda text: None)
    named = name_nodes(model)
    layers = weighted_layers(named)
    target = options.fidelity
    if not layers:
        return Int8Choice(None, {}, calibration_text,
                          reason="no Conv, Gemm or MatMul whose weight is an initializer (onnxruntime's quantizer "
                                 "takes those only; a weight made by a Constant node is not one)")
    say(f"int8: quantizing {len(layers)} layer(s), calibrated on {calibration_text} ...")
    every = quantize_model(named, calibration)
    float_ms = int8_ms = {n: None for n in layers}
    if options.timed:
        feed = {named.graph.input[0].name: first_batch(check_images, options.timing.batch)}
        say("int8: timing each layer as float and as int8 ...")
        float_ms = layer_times(named, layers, feed, options.timing.threads)
        int8_ms = layer_times(every, layers, feed, options.timing.threads)
    rows = {n: {"tactic": "int8", "reason": "", "float_ms": float_ms[n], "int8_ms": int8_ms[n], "added_error": None}
            for n in layers}
    kept = {n: SLOWER for n in layers if float_ms[n] is not None and int8_ms[n] is not None
            and int8_ms[n] >= float_ms[n] * SLOWER_BY and int8_ms[n] - float_ms[n] >= SLOWER_MS}
    islands = None
    if kept:  # a float layer among int8 ones also costs a QuantizeLinear after it: the whole model decides
        say(f"int8: timing the model with {len(kept)} slower layer(s) float against all int8 ...")
        islands = time_models(every, quantize_model(named, calibration, kept), check_images, options.timing)
        islands["layers"] = sorted(kept)
        if islands["ratio"]["p25"] <= 1.0:  # all int8 is the baseline: float islands must be clearly faster
            kept = {}
    check = FidelityCheck(named, check_images, options.threads)
    search: List[dict] = []

    def attempt(keep: Dict[str, str]):
        quantized = every if not keep else quantize_model(named, calibration, keep)
        measured = check.measure(quantized)
        search.append({"kept_float": len(keep), "fidelity": measured, "met": target.met(measured)})
        return quantized, measured

    chosen, measured = attempt(kept)
    if measured.get("detection_outputs") and measured.get("detections_kept") is None:
        return Int8Choice(None, rows, calibration_text, measured, target.to_json(), search,
                          reason="the model detects objects, and the original finds none on these images, so "
                                 "what int8 does to its detections cannot be checked: give --calibration DIR "
                                 "with images it finds objects in")
    if not target.met(measured):
        say("int8: measuring the error each layer adds ...")
        errors = layer_errors(named, chosen, [n for n in layers if n not in kept],
                              check_images[:SENSITIVITY_IMAGES], options.threads)
        for n, e in errors.items():
            rows[n]["added_error"] = e["added"]
        order = [n for n in most_hurt_first(errors)]
        chosen, measured, kept = _fewest_kept_float(order, kept, attempt, target, say, measured)
        if chosen is None:
            return Int8Choice(None, rows, calibration_text, measured, target.to_json(), search,
                              reason="the fidelity target is missed even with every weighted layer float "
                                     f"({fidelity_text(measured)})")
    for n, why in kept.items():
        rows[n].update(tactic="float", reason=why)
    for n in float_island(named, kept):
        if n in rows and n not in kept:
            rows[n].update(tactic="float", reason=READS_FLOAT)
    if not any(row["tactic"] == "int8" for row in rows.values()):
        return Int8Choice(None, rows, calibration_text, measured, target.to_json(), search,
                          reason="the fidelity target is met only with every weighted layer float")
    if not options.timed:
        choice = Int8Choice(chosen, rows, calibration_text, measured, target.to_json(), search)
        choice.record()
        return choice
    say("int8: timing the whole model, float vs int8 ...")
    timed = time_models(named, chosen, check_images, options.timing)
    choice = Int8Choice(chosen, rows, calibration_text, measured, target.to_json(), search, timed,
                        speed_islands=islands)
    if not not_slower(timed) or timed["ratio"]["median"] <= 1.0:
        choice.model, choice.reason = None, (f"the int8 model is not faster here ({timed['ratio']['median']:.2f}x "
                                             "the float one)")
    choice.record()
    return choice


def _fewest_kept_float(order: List[str], kept: Dict[str, str], attempt, target: FidelityTarget, say,
                       measured: dict):
    """The smallest k such that the k layers adding the most error, kept float, meet the target: doubling
    from 1, then bisection. Returns (model, fidelity, kept) or (None, last fidelity, kept)."""
    def keep(k):
        return {**kept, **{n: HURTS for n in order[:k]}}

    lo, hi, k, best = 0, None, 1, None
    while k <= len(order):
        say(f"int8: keeping the {k} most hurt layer(s) float ...")
        model, measured = attempt(keep(k))
        if target.met(measured):
            hi, best = k, (model, measured)
            break
        lo, k = k, (k * 2 if k * 2 <= len(order) or k == len(order) else len(order))
        if lo == len(order):
            return None, measured, keep(lo)
    if hi is None:
        return None, measured, keep(len(order))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        say(f"int8: keeping the {mid} most hurt layer(s) float ...")
        model, measured = attempt(keep(mid))
        if target.met(measured):
            hi, best = mid, (model, measured)
        else:
            lo = mid
    return best[0], best[1], keep(hi)
