"""Argument groups, defined once and shared by every subcommand, and the builders that turn the parsed
options into the library's objects (HashingOptions, Policy, DataSource). The probe's and the model input's
groups, and the plan they decide, are in `probe_args.py`.

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
    if first == "int8":
        return "the int8 tactic is measured on this machine; a plan file holds HASTE settings alone"
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


def data_source(args):
    from ..data.sources import DataSource

    return DataSource(kind=args.data, directory=args.data_dir, split=args.split, limit=args.limit,
                      mean=tuple(args.mean) if args.mean else None, std=tuple(args.std) if args.std else None)


def progress_printer(enabled: bool) -> Optional[Callable[[str], None]]:
    """A progress callback that prints to stderr, or None."""
    import sys

    if not enabled:
        return None
    return lambda text: print(text, file=sys.stderr, flush=True)
