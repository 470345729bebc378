"""Argument groups, defined once and shared by every subcommand, and the builders that turn the parsed
options into the library's objects (HashingOptions, Policy, ProbeOptions, DataSource, the plan).

Options that would silently ignore each other are refused here with a UsageError (exit 2).
`args.explicit` (set by `cli.main`) holds the options the user gave.
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional

from ..errors import UsageError
from ..op.geometry import DEFAULT_TILE, MAX_HYPERPLANES


# ---- value parsers ------------------------------------------------------------------------------

def tile(text: str):
    parts = text.lower().split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected P or PxQ, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive P or PxQ, got {text!r}")
    return values


def ranged(kind, lo, hi, name):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} {text!r}") from None
        if not (lo <= value and (hi is None or value <= hi)):
            raise argparse.ArgumentTypeError(f"{name} must be in [{lo}, {hi if hi is not None else 'inf'}], "
                                             f"got {text}")
        return value
    return parse


def _layer_hyperplanes(text: str):
    pattern, sep, count = text.rpartition("=")
    if not sep or not pattern or not count.strip().isdigit() or not 1 <= int(count) <= MAX_HYPERPLANES:
        raise argparse.ArgumentTypeError(f"--layer-hyperplanes wants PATTERN=L with L in 1..{MAX_HYPERPLANES}, "
                                         f"got {text!r}")
    return pattern, int(count)


def _layer_tile(text: str):
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern:
        raise argparse.ArgumentTypeError(f"--layer-tile wants PATTERN=P or PATTERN=PxQ, got {text!r}")
    try:
        return pattern, tuple(tile(value))
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"--layer-tile {text!r}: {err}") from err


def _candidates(text: str):
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(1 <= v <= MAX_HYPERPLANES for v in values):
        raise argparse.ArgumentTypeError(f"--candidates wants hyperplane counts in 1..{MAX_HYPERPLANES} separated by "
                                         f"commas, got {text!r}")
    return values


# ---- the groups ---------------------------------------------------------------------------------

MODEL_HELP = ("the ONNX model to read (never modified; external data files are read from its folder), or a model "
              "name: resnet20 (bundled), resnet18, resnet34, vgg16, mobilenetv2 (docs/eval.md)")


def add_model_input(parser: argparse.ArgumentParser, metavar: str = "IN", optional_default: Optional[str] = None) -> None:
    group = parser.add_argument_group("model input")
    if optional_default is None:
        group.add_argument("model", metavar=metavar, help=MODEL_HELP)
    else:
        group.add_argument("model", metavar=metavar, nargs="?", default=optional_default,
                           help=f"{MODEL_HELP} (default {optional_default})")


def add_model_output(parser: argparse.ArgumentParser, load_check: bool = True) -> None:
    group = parser.add_argument_group("model output")
    group.add_argument("output", metavar="OUT", help="where to write the result (atomically; never the input)")
    group.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    group.add_argument("--external-data", action="store_true",
                       help="store tensors in OUT.data beside OUT (default: only when the input had external "
                            "data, or the model is too large for one file)")
    if load_check:
        group.add_argument("--no-load-check", action="store_true",
                           help="skip loading the result in onnxruntime with the op library before reporting "
                                "success (onnx.checker still runs); for machines without the library")


HASHING_DESTS = ("hyperplanes", "layer_hyperplanes", "tile", "layer_tile", "sparsity", "seed", "no_centering", "merge",
                 "magnitude_split", "no_fuse")


def add_hashing(parser: argparse.ArgumentParser) -> None:
    from ..plan import DEFAULT_HYPERPLANES, DEFAULT_MERGE, DEFAULT_SPARSITY
    from ..probe import DEFAULT_PROBE_BUDGET

    group = parser.add_argument_group("hashing options")
    group.add_argument("--hyperplanes", "-L", type=ranged(int, 1, MAX_HYPERPLANES, "--hyperplanes"), default=None,
                       metavar="L", help=f"one L for every layer, 1..{MAX_HYPERPLANES} (the published method): fewer "
                                         "merge more channels. Default: L per layer from the data-free probe, for no "
                                         f"more disturbance than L={DEFAULT_PROBE_BUDGET} in every layer "
                                         f"(--probe-budget); L={DEFAULT_HYPERPLANES} where the probe cannot run")
    group.add_argument("--layer-hyperplanes", type=_layer_hyperplanes, action="append", default=[],
                       metavar="PATTERN=L",
                       help="L for the layers whose name matches PATTERN (shell pattern, as --include); repeatable, "
                            "the first match wins; other layers take --hyperplanes")
    group.add_argument("--tile", type=tile, default=DEFAULT_TILE, metavar="P",
                       help=f"output tile, P or PxQ (default {DEFAULT_TILE[0]})")
    group.add_argument("--layer-tile", type=_layer_tile, action="append", default=[], metavar="PATTERN=P",
                       help="the tile (P or PxQ) for the layers whose name matches PATTERN; repeatable, the first "
                            "match wins; other layers take --tile")
    group.add_argument("--sparsity", type=ranged(float, 0.0, 0.999999, "--sparsity"), default=DEFAULT_SPARSITY,
                       metavar="S", help=f"fraction of zero hyperplane entries, [0, 1) (default {DEFAULT_SPARSITY})")
    group.add_argument("--seed", type=ranged(int, 0, 2**62, "--seed"), default=0, metavar="N",
                       help="base seed; layer k (k-th Conv in traversal order) draws with a hash of (N, k), so different N "
                            "share no draws (default 0)")
    group.add_argument("--no-centering", action="store_true",
                       help="hash the raw channels instead of subtracting the channel mean first")
    group.add_argument("--merge", choices=["mean", "project"], default=DEFAULT_MERGE,
                       help="how merged filters weight their members: mean (the published method) or project "
                            "(least-squares scale of each member onto the merged patch; see docs/op_spec.md; "
                            f"default {DEFAULT_MERGE})")
    group.add_argument("--magnitude-split", action="store_true",
                       help="merge channels only when their sizes (squared norms) share a binary exponent: sign "
                            "hashes cannot see scale (see docs/op_spec.md, step 4b)")
    group.add_argument("--no-fuse", action="store_true",
                       help="keep a residual Add and a Relu/Clip that follow a replaced Conv as nodes of their own "
                            "(by default they are fused into HasteConv, as onnxruntime fuses them into Conv)")


SELECTION_DESTS = ("include", "exclude", "min_channels", "allow_1x1", "allow_strided", "allow_grouped", "allow_first")


def add_selection(parser: argparse.ArgumentParser) -> None:
    from ..plan import DEFAULT_MIN_CHANNELS

    group = parser.add_argument_group(
        "layer selection",
        "Default: replace Convs with a kernel larger than 1x1, stride 1, group 1 and at least "
        f"{DEFAULT_MIN_CHANNELS} input channels, except the first Conv. Depthwise Convs are never replaced.")
    group.add_argument("--include", action="append", default=[], metavar="PATTERN",
                       help="only consider nodes whose name matches (shell pattern; repeatable)")
    group.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                       help="never replace nodes whose name matches (shell pattern; repeatable)")
    group.add_argument("--min-channels", type=ranged(int, 1, None, "--min-channels"), default=DEFAULT_MIN_CHANNELS,
                       metavar="N", help=f"least input channels per group (default {DEFAULT_MIN_CHANNELS})")
    group.add_argument("--allow-1x1", action="store_true", help="also replace 1x1 Convs")
    group.add_argument("--allow-strided", action="store_true", help="also replace Convs with strides > 1")
    group.add_argument("--allow-grouped", action="store_true", help="also replace grouped (not depthwise) Convs")
    group.add_argument("--allow-first", action="store_true", help="also replace the network's first Conv")


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


def add_plan_files(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("plan files")
    group.add_argument("--plan", metavar="PLAN.json", default=None,
                       help="apply this plan (from --save-plan) instead of deciding: no probe; refused when it was "
                            "made for another model (exit 3) or with options that decide (exit 2)")
    group.add_argument("--save-plan", metavar="PLAN.json", default=None,
                       help="also write the plan that was applied: every conv site with its settings or the reason "
                            "it was kept, and the probe's measurements (atomically)")


DATA_DESTS = ("data", "data_dir", "split", "limit", "mean", "std")


def add_data(parser: argparse.ArgumentParser, limit_default: Optional[int] = None) -> None:
    from ..data.preprocess import FASHION_MNIST_MEAN, FASHION_MNIST_STD
    from ..data.sources import SOURCES

    group = parser.add_argument_group(
        "data", "Images are fitted to the model's declared input size (padded with 0 when smaller, resized "
        "bilinearly otherwise), scaled to [0, 1] and normalised with --mean/--std.")
    group.add_argument("--data", default="fashion-mnist", choices=list(SOURCES),
                       help="fashion-mnist (Debian's dataset-fashion-mnist or the haste-onnx cache; default), mnist "
                            "(IDX files in --data-dir), folder (--data-dir/<class>/<image>), imagenet-samples "
                            "(foolbox's 20 ImageNet images)")
    group.add_argument("--data-dir", metavar="DIR", default=None,
                       help="where the data are (required for mnist and folder)")
    group.add_argument("--split", choices=["test", "train"], default="test", help="IDX split (default test)")
    group.add_argument("--limit", type=ranged(int, 1, None, "--limit"), default=limit_default, metavar="N",
                       help="use only the first N images" + ("" if limit_default is None else
                                                            f" (default {limit_default})"))
    group.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                       help=f"normalisation mean, one value or one per channel (default {FASHION_MNIST_MEAN}, or "
                            "the model's own)")
    group.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                       help=f"normalisation std, one value or one per channel (default {FASHION_MNIST_STD}, or the "
                            "model's own)")


def add_runtime(parser: argparse.ArgumentParser, batch: int = 100) -> None:
    group = parser.add_argument_group("onnxruntime")
    group.add_argument("--batch", type=ranged(int, 1, None, "--batch"), default=batch, metavar="B",
                       help=f"images per run (default {batch})")
    group.add_argument("--threads", type=ranged(int, 1, None, "--threads"), default=2, metavar="T",
                       help="intra-op threads of both sessions (default 2)")


def add_output_format(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output format")
    group.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


# ---- builders -----------------------------------------------------------------------------------

def given(args, dest: str) -> bool:
    """Whether the user gave option `dest` on the command line (`cli.main` records them)."""
    return dest in getattr(args, "explicit", ())


def flag(dest: str) -> str:
    return {"hyperplanes": "--hyperplanes/-L"}.get(dest, "--" + dest.replace("_", "-"))


def refuse_together(args, first: str, others) -> None:
    """UsageError when `first` and any of `others` were both given."""
    if given(args, first):
        for other in others:
            if given(args, other):
                raise UsageError(f"{flag(first)} and {flag(other)} cannot be used together: "
                                 f"{_why(first, other)}")


def _why(first: str, other: str) -> str:
    if first == "plan":
        return "the plan already holds every layer's settings"
    if first == "target_cut":
        if other in ("hyperplanes", "no_probe"):
            return "the target rule chooses L per layer itself"
        return "the target rule has no budget" if other in ("probe_budget", "budget_draws") else \
            "the target rule is a share of the conv MACs, with no fidelity target or timing"
    if first == "seeds":
        return "--seeds lists every base seed to run"
    if first == "calibration":
        return "the calibration images replace the probe's own"
    if first == "probe_budget":
        return "the relative rule has no absolute fidelity target"
    if first == "objective":
        return "the MAC objective times nothing"
    return "without a probe the probe's options have no use"


def hashing_options(args):
    from ..plan import DEFAULT_HYPERPLANES, HashingOptions

    return HashingOptions(hyperplanes=args.hyperplanes or DEFAULT_HYPERPLANES, tile=tuple(args.tile),
                          sparsity=args.sparsity, seed=args.seed, centering=not args.no_centering,
                          magnitude_split=args.magnitude_split, merge=args.merge,
                          layer_hyperplanes=tuple(args.layer_hyperplanes), layer_tiles=tuple(args.layer_tile),
                          fuse=not args.no_fuse)


def selection_policy(args):
    from ..plan import Policy

    return Policy(include=list(args.include), exclude=list(args.exclude), min_channels=args.min_channels,
                  allow_1x1=args.allow_1x1, allow_strided=args.allow_strided, allow_grouped=args.allow_grouped,
                  allow_first=args.allow_first)


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


def data_source(args):
    from ..data.sources import DataSource

    return DataSource(kind=args.data, directory=args.data_dir, split=args.split, limit=args.limit,
                      mean=tuple(args.mean) if args.mean else None, std=tuple(args.std) if args.std else None)


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


def progress_printer(enabled: bool) -> Optional[Callable[[str], None]]:
    """A progress callback that prints to stderr, or None."""
    import sys

    if not enabled:
        return None
    return lambda text: print(text, file=sys.stderr, flush=True)


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
