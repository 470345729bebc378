"""`demo`'s honest headline: the float32 original, onnxruntime's int8 alone and the best plan, side by side.

int8 alone: onnxruntime's quantize_static on every layer, calibrated on synthetic probe images (what a user
gets from one call of onnxruntime's tooling, without data). Best plan: what `haste-onnx rewrite MODEL OUT
--int8` writes: the int8 tactic per layer (`quantize.choose_int8`), then HASTE on the layers left float
where it wins. Each: accuracy on the demo's images and latency against the original, alternating.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np


def int8_comparison(args, model, images: np.ndarray, labels: np.ndarray, original_accuracy: float,
                    progress: Optional[Callable[[str], None]] = None) -> dict:
    from ..measure.predictor import Predictor
    from ..measure.sessions import bench_session
    from ..measure.timing import time_alternating
    from ..quantize import Int8Options, choose_int8, int8_images, quantize_model
    from ..quantize.ort_int8 import name_nodes
    from ..rewrite import RejectedWithReport, rewrite_model
    from .probe_args import decide_plan, probe_options

    say = progress or (lambda text: None)
    probe = probe_options(args, args.threads)
    calibration, calibration_text, check, _ = int8_images(model, probe, None, args.threads)
    say("int8 alone: onnxruntime's quantize_static on every layer ...")
    alone = quantize_model(name_nodes(model), calibration)
    choice = choose_int8(model, calibration, calibration_text, check,
                         Int8Options(fidelity=probe.fidelity, timing=probe.timing, threads=args.threads), say)
    plan_model = choice.model if choice.model is not None else model
    haste_layers = 0
    plan, _ = decide_plan(args, plan_model, args.threads, progress=say)
    if plan.replaced():
        try:
            plan_model, report = rewrite_model(plan_model, plan)
            haste_layers = report.count("replaced")
        except RejectedWithReport:
            pass
    original = bench_session(model, args.threads)
    feed = {original.get_inputs()[0].name: np.ascontiguousarray(images[:args.batch])}
    rows = {}
    for name, variant in (("int8_alone", alone), ("best_plan", plan_model)):
        say(f"{name.replace('_', ' ')}: accuracy on {len(labels)} images, then timing against the original ...")
        predicted, _, _ = Predictor(variant, args.threads).predict(images, args.batch)
        t_orig, t_var = time_alternating(original, bench_session(variant, args.threads), feed, args.repeats,
                                         args.warmup, time.perf_counter)
        rows[name] = {"accuracy": float(np.mean(predicted == labels)),
                      "original_ms": float(np.median(t_orig)), "variant_ms": float(np.median(t_var))}
    rows["best_plan"].update(int8=choice.summary_line(), haste_layers=haste_layers)
    rows["calibration"] = calibration_text
    rows["original_accuracy"] = original_accuracy
    return rows


def int8_lines(rows: dict) -> list:
    """The demo's lines for int8 alone and the best plan."""
    base = rows["original_accuracy"]

    def line(label: str, row: dict, what: str) -> str:
        return (f"{label} accuracy {100 * row['accuracy']:.2f}% ({100 * (row['accuracy'] - base):+.2f} pt), "
                f"latency {row['variant_ms']:.2f} ms vs {row['original_ms']:.2f} ms: "
                f"{row['original_ms'] / row['variant_ms']:.2f}x ({what})")

    plan = rows["best_plan"]
    what = plan["int8"].split(" with onnxruntime")[0].removeprefix("int8: ") + (
        f"; HasteConv on {plan['haste_layers']} layer(s)" if plan["haste_layers"] else "; no HasteConv")
    return [line("int8 alone:", rows["int8_alone"], "onnxruntime's quantize_static on every layer, "
                 f"calibrated on {rows['calibration'].split(':')[0]}"),
            line("best plan: ", plan, f"`haste-onnx rewrite MODEL OUT --int8`: {what}")]
