"""The static methods' argument group (RED, QSFM, and their composition with HASTE) and its builders."""
from __future__ import annotations

import argparse
from typing import Callable, Optional

from ..errors import UsageError
from .args import flag, given, ranged
from .probe_args import probe_options


METHODS = ("haste", "red", "qsfm", "red+haste", "qsfm+haste")


def add_static(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "static methods",
        "--method red|qsfm: a static pass that removes or merges redundant output channels of the Convs and "
        "writes a plain, smaller ONNX model (no custom op); red+haste / qsfm+haste: that pass, then the HASTE "
        "plan on the smaller model, in one rewrite. See docs/static.md.")
    group.add_argument("--method", choices=METHODS, default="haste",
                       help="haste (default): HasteConv; red: data-free weight hashing and merging of identical "
                            "neurons; qsfm: feature-map similarity on the probe images, redundant filters removed "
                            "and the next layer compensated")
    group.add_argument("--red-resolution", type=ranged(float, 0.0, 100.0, "--red-resolution"), default=None,
                       metavar="B", help="RED: hashing bandwidth, times a Silverman bandwidth per layer (default 0.1; "
                                         "0: no hashing); larger: fewer distinct weights")
    group.add_argument("--red-threshold", type=ranged(float, 0.0, 10.0, "--red-threshold"), default=None,
                       metavar="E", help="RED: merge neurons within this relative distance (default 0: identical "
                                         "only, exact on the hashed model)")
    group.add_argument("--static-cut", type=ranged(float, 0.001, 0.95, "--static-cut"), default=None, metavar="R",
                       help="QSFM: the share of conv MACs to remove (default: the most within the fidelity "
                            "target, --min-agreement / --max-error, on the probe images)")
    group.add_argument("--static-tied", action="store_true",
                       help="also change channels tied by residual Adds (every Conv of the tie at once)")
    group.add_argument("--qsfm-compensate", choices=["pair", "lstsq"], default=None,
                       help="QSFM: a removed channel's outgoing weights go to its most similar channel times the "
                            "least-squares scale (pair, default, as published) or to all kept channels of the "
                            "layer by least squares on the probe maps (lstsq)")
    group.add_argument("--static-min-keep", type=ranged(float, 0.01, 1.0, "--static-min-keep"), default=None,
                       metavar="F", help="QSFM: no layer keeps fewer than this share of its channels (default 0.25)")


def static_options(args):
    """StaticOptions from the static group (None for --method haste); refuses knobs of another method."""
    from ..static.run import StaticOptions

    method = getattr(args, "method", "haste") or "haste"
    base = method.split("+")[0]
    if base == "haste":
        for dest in ("red_resolution", "red_threshold", "static_cut", "static_min_keep", "qsfm_compensate"):
            if given(args, dest):
                raise UsageError(f"{flag(dest)} is for --method red or qsfm")
        if getattr(args, "static_tied", False):
            raise UsageError("--static-tied is for --method red or qsfm")
        return None
    other = (("static_cut", "static_min_keep", "qsfm_compensate") if base == "red"
             else ("red_resolution", "red_threshold"))
    for dest in other:
        if given(args, dest):
            raise UsageError(f"{flag(dest)} is not an option of --method {base}")
    kw = {"method": base, "tied": bool(args.static_tied)}
    for dest, key in (("red_resolution", "red_resolution"), ("red_threshold", "red_threshold"),
                      ("static_cut", "cut"), ("static_min_keep", "min_keep"), ("qsfm_compensate", "compensate"),
                      ("min_agreement", "min_agreement"), ("max_error", "max_error")):
        if getattr(args, dest, None) is not None:
            kw[key] = getattr(args, dest)
    return StaticOptions(**kw)


def static_pass(args, model, threads: Optional[int] = 2, mean=None, std=None,
                progress: Optional[Callable[[str], None]] = None):
    """(smaller model, StaticReport) of the --method's static pass, or (model, None) for --method haste.
    QSFM reads the probe's images (synthetic by default, --probe / --calibration for data)."""
    options = static_options(args)
    if options is None:
        return model, None
    from ..static.run import static_compress

    images = check = None
    if options.method == "qsfm":
        from ..probe.images import decided_images, probe_images

        probe = probe_options(args, threads)
        images = probe_images(model, probe, mean, std)[0]
        if options.cut is None:  # the fidelity target decides the cut: check it on decided images
            check = decided_images(model, probe, 2 * len(images), threads)[0]
    return static_compress(model, options, images, threads=threads, progress=progress, check_images=check)
