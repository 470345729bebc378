"""The probe's and the model input's argument groups, and the builders of ProbeOptions, InputSpec and the plan.

Options that would silently ignore each other are refused with a UsageError (exit 2).
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional

from ..op.geometry import MAX_HYPERPLANES
from .args import HASHING_DESTS, SELECTION_DESTS, given, hashing_options, ranged, refuse_together, selection_policy, tile


def _candidates(text: str):
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(1 <= v <= MAX_HYPERPLANES for v in values):
        raise argparse.ArgumentTypeError(f"--candidates wants hyperplane counts in 1..{MAX_HYPERPLANES} separated by "
                                         f"commas, got {text!r}")
    return values




PROBE_DESTS = ("probe_budget", "budget_draws", "target_cut", "no_probe", "probe", "probe_images", "candidates",
               "candidate_tiles", "objective", "min_agreement", "max_error", "time_batch", "time_threads",
               "calibration")
# the probe's own options: without a probe (-L, --no-probe) they would be ignored
PROBE_ONLY = ("probe_budget", "budget_draws", "probe", "probe_images", "candidates", "candidate_tiles", "objective",
              "min_agreement", "max_error", "time_batch", "time_threads", "calibration")
FIDELITY_DESTS = ("min_agreement", "max_error")
TIME_DESTS = ("time_batch", "time_threads")


def add_probe(parser: argparse.ArgumentParser) -> None:
    from ..plan import DEFAULT_HYPERPLANES
    from ..probe import BUDGET_DRAWS, DEFAULT_CANDIDATES, DEFAULT_PROBE_BUDGET
    from ..probe.fidelity import DEFAULT_MAX_ERROR, DEFAULT_MIN_AGREEMENT
    from ..probe.images import DEFAULT_PROBE_IMAGES

    group = parser.add_argument_group(
        "hyperplanes per layer from a probe",
        "By default each replaceable layer is rewritten alone at every candidate L, run on probe images "
        "(synthetic noise: no data is read) and timed on this machine against its Conv; each layer then gets "
        "the L, or stays Conv, so that the time saved is the most while the whole rewritten model stays within "
        f"the fidelity target on the probe (top-1 agreement >= {100 * DEFAULT_MIN_AGREEMENT:.0f}%, relative "
        f"output error <= {DEFAULT_MAX_ERROR}); the whole model is then timed, and layers go back to Conv "
        "until it is not slower. A layer that is not measurably faster stays Conv. --objective macs: the "
        f"conv MACs saved instead, within the disturbance of one L={DEFAULT_PROBE_BUDGET} in every layer (the "
        "previous rule). --probe-budget L: that relative rule. --target-cut: the least disturbance that saves a "
        "share of the MACs. --hyperplanes or --no-probe: one L for every layer, no probe. See docs/cli.md.")
    group.add_argument("--objective", choices=["time", "macs"], default=None,
                       help="what the probe maximises: time measured on this machine (default) or conv MACs "
                            f"(alone: the previous rule, within the disturbance of L={DEFAULT_PROBE_BUDGET})")
    group.add_argument("--min-agreement", type=ranged(float, 0.0, 1.0, "--min-agreement"), default=None,
                       metavar="A", help=f"fidelity target: least top-1 agreement with the original on the probe "
                                         f"(default {DEFAULT_MIN_AGREEMENT})")
    group.add_argument("--max-error", type=ranged(float, 0.0, None, "--max-error"), default=None, metavar="E",
                       help="fidelity target: largest mean relative output error ||y' - y|| / ||y|| of any output "
                            f"on the probe (default {DEFAULT_MAX_ERROR})")
    group.add_argument("--time-batch", type=ranged(int, 1, 4096, "--time-batch"), default=None, metavar="B",
                       help="batch the layers and the model are timed at (default 1)")
    group.add_argument("--time-threads", type=ranged(int, 1, 256, "--time-threads"), default=None, metavar="T",
                       help="intra-op threads they are timed with (default 1, with the process CPU clock; more: "
                            "wall clock)")
    group.add_argument("--probe-budget", type=ranged(int, 1, MAX_HYPERPLANES, "--probe-budget"), default=None,
                       metavar="L", help="the relative rule instead of the fidelity target: no more disturbance "
                                         f"than one L in every layer (the previous default, {DEFAULT_PROBE_BUDGET}); "
                                         "fewer save more and lose more")
    group.add_argument("--budget-draws", type=ranged(int, 1, 64, "--budget-draws"), default=None, metavar="K",
                       help=f"draws of the budget L's hyperplanes whose mean disturbance is the budget (default "
                            f"{BUDGET_DRAWS}; 1: only the seed's own, whose luck then moves the cut)")
    group.add_argument("--target-cut", type=ranged(float, 0.001, 0.999, "--target-cut"), default=None, metavar="R",
                       help="instead of the budget: the fraction of the conv MACs to save on the probe, e.g. 0.35")
    group.add_argument("--no-probe", action="store_true",
                       help=f"one L for every layer (--hyperplanes, default {DEFAULT_HYPERPLANES}); no probe")
    group.add_argument("--probe", choices=["synthetic", "synthetic-blocky", "fashion-mnist-train"], default=None,
                       help="synthetic: smooth noise (1/f^2 spectrum) with dark regions, data-free "
                            "(default); synthetic-blocky: the first probe, blocky uniform noise, data-free; "
                            "fashion-mnist-train: the first images of the Fashion-MNIST training split, "
                            "unlabelled (calibration: uses data)")
    group.add_argument("--probe-images", type=ranged(int, 1, 4096, "--probe-images"), default=None,
                       metavar="N", help=f"probe images (default {DEFAULT_PROBE_IMAGES} for inputs up to 32x32, "
                                         "fewer for larger inputs, at least 8)")
    group.add_argument("--candidates", type=_candidates, default=None, metavar="L,L,...",
                       help="hyperplane counts to try per layer (default "
                            f"{','.join(map(str, DEFAULT_CANDIDATES))}, and the budget's L)")
    group.add_argument("--candidate-tiles", type=lambda t: [tile(x) for x in t.split(",")], default=None,
                       metavar="P,P,...", help="tiles to try per layer, each P or PxQ (default: only --tile)")


def probe_options(args, threads: Optional[int] = 2):
    """The probe's options; rule None when one L is asked for (-L, --no-probe) or the command has no probe.

    The rule: --target-cut: target; --probe-budget, or --objective macs without a fidelity option: the relative
    budget rule; else the fidelity target. The objective: time unless --objective macs (the target rule: macs).
    """
    from ..probe import BUDGET_DRAWS, DEFAULT_CANDIDATES, ProbeOptions
    from ..probe.fidelity import FidelityTarget
    from ..probe.layer_time import TimingContext

    if not hasattr(args, "no_probe"):
        return ProbeOptions(rule=None)
    refuse_together(args, "target_cut", ("hyperplanes", "no_probe", "probe_budget", "budget_draws", "objective")
                    + FIDELITY_DESTS + TIME_DESTS)
    for one_l in ("hyperplanes", "no_probe"):
        refuse_together(args, one_l, PROBE_ONLY)
    refuse_together(args, "probe_budget", FIDELITY_DESTS)
    objective = args.objective or "time"
    if objective == "macs":
        refuse_together(args, "objective", TIME_DESTS)
    if args.target_cut is not None:
        rule, objective = "target", "macs"
    elif args.no_probe or args.hyperplanes is not None:
        rule = None
    elif args.probe_budget is not None or args.budget_draws is not None or (
            objective == "macs" and not any(given(args, d) for d in FIDELITY_DESTS)):
        rule = "budget"
    else:
        rule = "fidelity"
    fidelity = FidelityTarget(**{k: v for k, v in (("min_agreement", args.min_agreement),
                                                   ("max_error", args.max_error)) if v is not None})
    timing = TimingContext(**{k: v for k, v in (("batch", args.time_batch), ("threads", args.time_threads))
                              if v is not None})
    return ProbeOptions(rule=rule, objective=objective, fidelity=fidelity, timing=timing,
                        target_cut=args.target_cut, budget_hyperplanes=args.probe_budget,
                        budget_draws=args.budget_draws or BUDGET_DRAWS, source=args.probe or "synthetic",
                        images=args.probe_images,
                        candidates=tuple(args.candidates) if args.candidates else DEFAULT_CANDIDATES,
                        candidate_tiles=tuple(tuple(t) for t in args.candidate_tiles) if args.candidate_tiles else None,
                        threads=threads, inputs=input_spec(args))


def decide_plan(args, model, threads: Optional[int] = 2, mean=None, std=None,
                progress: Optional[Callable[[str], None]] = None, seed: Optional[int] = None):
    """(plan, what the probe did) from the command's options: `--plan` when given (checked against nothing
    else), else the layer policy and the probe (`probe.plan_with_probe`). `seed` replaces `--seed`."""
    from dataclasses import replace

    from ..plan import load_plan
    from ..probe import plan_with_probe

    if getattr(args, "plan", None):
        refuse_together(args, "plan", HASHING_DESTS + SELECTION_DESTS + PROBE_DESTS)
        return load_plan(args.plan), None
    options = hashing_options(args)
    if seed is not None:
        options = replace(options, seed=seed)
    return plan_with_probe(model, options, selection_policy(args), probe_options(args, threads), mean, std, progress)


# ---- the model's input: what the probe and `compare` feed it -----------------------------------------

def _input_shape(text: str):
    try:
        values = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        values = ()
    if len(values) < 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive dims separated by x, e.g. 1x3x640x640, got {text!r}")
    return values


def _value_range(text: str):
    try:
        values = tuple(float(v) for v in text.replace("[", "").replace("]", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 2 or not values[0] < values[1]:
        raise argparse.ArgumentTypeError(f"expected LO,HI with LO < HI, e.g. 0,1 or 0,255, got {text!r}")
    return values


INPUT_DESTS = ("input_shape", "layout", "value_range", "calibration")


def add_inputs(parser: argparse.ArgumentParser, calibration: bool = True) -> None:
    """The model's input as the user states it (the InputSpec): what is not stated is inferred from the graph,
    the model's metadata, or a stated default (docs/cli.md). Adds --mean/--std when the command lacks them."""
    group = parser.add_argument_group(
        "model input format",
        "How the model's image input looks, for the images the probe (or compare) makes: layout, size and "
        "channels from the graph (a Transpose to NCHW after the input, a last dimension of 1 or 3), free dims "
        "from --input-shape or a default (224x224 for 3 channels, 28x28 for 1); values in [0, 1] normalised "
        "with ImageNet's mean/std (3 channels) or Fashion-MNIST's (1 channel) unless these options or the "
        "model's metadata say otherwise. A stated --range without --mean/--std means no normalisation.")
    group.add_argument("--input-shape", type=_input_shape, default=None, metavar="DIMS",
                       help="the input's shape in the model's layout, e.g. 1x3x640x640: sizes the dims the graph "
                            "leaves free (must agree with the fixed ones)")
    group.add_argument("--layout", type=str.upper, choices=["NCHW", "NHWC"], default=None,
                       help="the input's layout (default: inferred from the graph)")
    group.add_argument("--range", "--value-range", dest="value_range", type=_value_range, default=None,
                       metavar="LO,HI", help="the pixel values the model takes before --mean/--std, e.g. 0,1 or "
                                             "0,255 (default 0,1)")
    if calibration:
        group.add_argument("--calibration", metavar="DIR", default=None,
                           help="probe with the images in DIR (a few dozen of your own, unlabelled, any depth; "
                                "resized to the input size) instead of synthetic ones: data-light instead of "
                                "data-free")
    if "--mean" not in parser._option_string_actions:
        group.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                           help="normalisation mean, one value or one per channel, on the --range scale "
                                "(default: the model's metadata, else ImageNet's or Fashion-MNIST's)")
    if "--std" not in parser._option_string_actions:
        group.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                           help="normalisation std, one value or one per channel (default: as --mean)")


def input_spec(args):
    """The InputSpec of the options of `add_inputs` (and --mean/--std); empty for a command without them."""
    from ..model_inputs import InputSpec

    if getattr(args, "calibration", None):
        refuse_together(args, "calibration", ("probe",))
    mean, std = getattr(args, "mean", None), getattr(args, "std", None)
    return InputSpec(shape=getattr(args, "input_shape", None), layout=getattr(args, "layout", None),
                     value_range=getattr(args, "value_range", None), mean=tuple(mean) if mean else None,
                     std=tuple(std) if std else None, calibration=getattr(args, "calibration", None))
