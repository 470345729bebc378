"""The int8 tactic's argument group (`--int8`) and its builder: onnxruntime's quantization where it pays."""
from __future__ import annotations

import argparse
from typing import Callable, Optional

from ..errors import UsageError
from .args import given, ranged, refuse_together


def add_int8(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "int8 tactic",
        "--int8: quantize with onnxruntime's own tooling (quantize_static: QDQ, per-channel int8 weights, uint8 "
        "activations), calibrated on synthetic probe images (data-free) or the --calibration folder; a layer "
        "whose int8 kernel is slower here, or whose quantization costs the most fidelity, stays float until "
        "the model meets the fidelity target (--min-agreement / --max-error) on other probe images. Composes "
        "with --method: static pass, then int8, then HASTE on the layers left float. See docs/int8.md.")
    group.add_argument("--int8", action="store_true",
                       help="add int8 as a tactic: each weighted layer becomes int8 where that is faster here and "
                            "the model stays within the fidelity target")
    group.add_argument("--int8-images", type=ranged(int, 1, 4096, "--int8-images"), default=None, metavar="N",
                       help="calibration images (default 256 for inputs up to 64x64, 32 for larger ones)")


def int8_pass(args, model, progress: Optional[Callable[[str], None]] = None, threads: Optional[int] = 2):
    """(model, Int8Choice) after the int8 tactic, or (model, None) without --int8."""
    if not getattr(args, "int8", False):
        if given(args, "int8_images"):
            raise UsageError("--int8-images is for --int8")
        return model, None
    refuse_together(args, "int8", ("plan", "save_plan"))
    from ..quantize import Int8Options, choose_int8, int8_images
    from .probe_args import probe_options

    probe = probe_options(args, threads)
    calibration, calibration_text, check, check_text = int8_images(model, probe, args.int8_images, threads)
    options = Int8Options(fidelity=probe.fidelity, timing=probe.timing, threads=threads)
    choice = choose_int8(model, calibration, calibration_text, check, options, progress)
    choice.check_text = check_text
    return (choice.model if choice.model is not None else model), choice
