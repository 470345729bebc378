"""The `haste-onnx` command line.

Subcommands are modules listed in `SUBCOMMANDS`; each defines
- `HELP`: one line for `haste-onnx --help`,
- `configure(parser)`: adds its arguments, mostly through the shared argument
  groups below (`add_model_input`, `add_model_output`, `add_hashing`,
  `add_selection`, `add_output_format`),
- `run(args) -> int`: does the job and returns the exit code.
A subcommand module imports its heavy dependencies inside `run`, so that
`haste-onnx --help` stays fast. To add a subcommand (`eval`, `bench`, `demo`,
`fetch-data`, ...), write such a module and add one line to `SUBCOMMANDS`.

Errors are one line on stderr, `haste-onnx <command>: error: <problem>`,
with no traceback unless `--debug` is given. Exit codes:

| code | meaning |
|---|---|
| 0 | success |
| 1 | internal error (a bug: rerun with `--debug` for the traceback) |
| 2 | usage error: unknown option, bad option value (from argparse) |
| 3 | input problem: missing file, not ONNX, truncated, unreadable, external data missing |
| 4 | output problem: OUT exists (no `--force`), OUT is the input, folder missing or not writable |
| 5 | nothing to do or model rejected: no Conv, no eligible Conv, nothing to strip, opset < 7 |
| 6 | the result fails `onnx.checker` or does not load in onnxruntime (or the op library is missing) |
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import List, Optional

from .model_io import HasteOnnxError, UsageError

PROG = "haste-onnx"

# name -> module (see the module docstring for what a module must define)
SUBCOMMANDS = {
    "rewrite": "haste_onnx.rewrite.command",
    "strip": "haste_onnx.rewrite.strip_command",
    "info": "haste_onnx.info",
    "eval": "haste_onnx.eval_command",
    "bench": "haste_onnx.bench_command",
    "demo": "haste_onnx.demo",
    "fetch-data": "haste_onnx.fetch_command",
}

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_REJECTED, EXIT_CHECK = range(7)


# ---- shared argument groups -------------------------------------------------------------------

def add_model_input(parser: argparse.ArgumentParser, metavar: str = "IN") -> None:
    group = parser.add_argument_group("model input")
    group.add_argument("model", metavar=metavar, help="the ONNX model to read (never modified; external data "
                       "files are read from its folder), or a model name: resnet20 (bundled), resnet18, resnet34, "
                       "vgg16, mobilenetv2 (docs/eval.md)")


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


def _tile(text: str):
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


def _ranged(kind, lo, hi, name):
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
    from .op.geometry import MAX_HYPERPLANES

    pattern, sep, count = text.rpartition("=")
    if not sep or not pattern or not count.strip().isdigit() or not 1 <= int(count) <= MAX_HYPERPLANES:
        raise argparse.ArgumentTypeError(f"--layer-hyperplanes wants PATTERN=L with L in 1..{MAX_HYPERPLANES}, "
                                         f"got {text!r}")
    return pattern, int(count)


def _layer_tile(text: str):
    pattern, sep, tile = text.rpartition("=")
    if not sep or not pattern:
        raise argparse.ArgumentTypeError(f"--layer-tile wants PATTERN=P or PATTERN=PxQ, got {text!r}")
    try:
        return pattern, tuple(_tile(tile))
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"--layer-tile {text!r}: {err}") from err


def add_hashing(parser: argparse.ArgumentParser) -> None:
    from .allocate import DEFAULT_PROBE_BUDGET
    from .rewrite.conv_to_haste import DEFAULT_HYPERPLANES, DEFAULT_MERGE, DEFAULT_SPARSITY

    group = parser.add_argument_group("hashing options")
    group.add_argument("--hyperplanes", "-L", type=_ranged(int, 1, 64, "--hyperplanes"), default=None,
                       metavar="L", help="one L for every layer, 1..64 (the published method): fewer merge more "
                                         "channels. Default: L per layer from the data-free probe, for no more "
                                         f"disturbance than L={DEFAULT_PROBE_BUDGET} in every layer (--probe-budget); "
                                         f"L={DEFAULT_HYPERPLANES} where the probe cannot run")
    group.add_argument("--layer-hyperplanes", type=_layer_hyperplanes, action="append", default=[],
                       metavar="PATTERN=L",
                       help="L for the layers whose name matches PATTERN (shell pattern, as --include); repeatable, "
                            "the first match wins; other layers take --hyperplanes")
    group.add_argument("--tile", type=_tile, default=(4, 4), metavar="P",
                       help="output tile, P or PxQ (default 4)")
    group.add_argument("--layer-tile", type=_layer_tile, action="append", default=[], metavar="PATTERN=P",
                       help="the tile (P or PxQ) for the layers whose name matches PATTERN; repeatable, the first "
                            "match wins; other layers take --tile")
    group.add_argument("--sparsity", type=_ranged(float, 0.0, 0.999999, "--sparsity"), default=DEFAULT_SPARSITY,
                       metavar="S", help=f"fraction of zero hyperplane entries, [0, 1) (default {DEFAULT_SPARSITY})")
    group.add_argument("--seed", type=_ranged(int, 0, 2**62, "--seed"), default=0, metavar="N",
                       help="base seed; layer k (k-th Conv in traversal order) draws with N+k (default 0)")
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


def add_selection(parser: argparse.ArgumentParser) -> None:
    from .policy import DEFAULT_MIN_CHANNELS

    group = parser.add_argument_group(
        "layer selection",
        "Default: replace Convs with a kernel larger than 1x1, stride 1, group 1 and at least "
        f"{DEFAULT_MIN_CHANNELS} input channels, except the first Conv. Depthwise Convs are never replaced.")
    group.add_argument("--include", action="append", default=[], metavar="PATTERN",
                       help="only consider nodes whose name matches (shell pattern; repeatable)")
    group.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                       help="never replace nodes whose name matches (shell pattern; repeatable)")
    group.add_argument("--min-channels", type=_ranged(int, 1, None, "--min-channels"), default=DEFAULT_MIN_CHANNELS,
                       metavar="N", help=f"least input channels per group (default {DEFAULT_MIN_CHANNELS})")
    group.add_argument("--allow-1x1", action="store_true", help="also replace 1x1 Convs")
    group.add_argument("--allow-strided", action="store_true", help="also replace Convs with strides > 1")
    group.add_argument("--allow-grouped", action="store_true", help="also replace grouped (not depthwise) Convs")
    group.add_argument("--allow-first", action="store_true", help="also replace the network's first Conv")


def _candidates(text: str):
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(1 <= v <= 64 for v in values):
        raise argparse.ArgumentTypeError(f"--candidates wants hyperplane counts in 1..64 separated by commas, "
                                         f"got {text!r}")
    return values


def add_allocation(parser: argparse.ArgumentParser) -> None:
    from .allocate import BUDGET_DRAWS, DEFAULT_CANDIDATES, DEFAULT_PROBE_BUDGET, DEFAULT_PROBE_IMAGES
    from .rewrite.conv_to_haste import DEFAULT_HYPERPLANES

    group = parser.add_argument_group(
        "hyperplanes per layer from a probe",
        "By default each replaceable layer is rewritten alone at every candidate L and run on probe images "
        "(synthetic noise: no data is read); each layer then gets the L, or stays dense, so that the conv MACs "
        "saved on the probe (overheads included) are the most for no more summed disturbance of the output "
        f"than one L={DEFAULT_PROBE_BUDGET} in every layer (--probe-budget). With --target-cut, the least "
        "disturbance that saves a given share instead. --hyperplanes or --no-probe: one L for every layer, "
        "no probe. See docs/ablations.md.")
    group.add_argument("--probe-budget", type=_ranged(int, 1, 64, "--probe-budget"), default=None, metavar="L",
                       help="the probe's disturbance budget: that of one L in every layer (default "
                            f"{DEFAULT_PROBE_BUDGET}); fewer save more and lose more")
    group.add_argument("--budget-draws", type=_ranged(int, 1, 64, "--budget-draws"), default=None, metavar="K",
                       help=f"draws of the budget L's hyperplanes whose mean disturbance is the budget (default "
                            f"{BUDGET_DRAWS}; 1: only the seed's own, whose luck then moves the cut)")
    group.add_argument("--target-cut", type=_ranged(float, 0.001, 0.999, "--target-cut"), default=None, metavar="R",
                       help="instead of the budget: the fraction of the conv MACs to save on the probe, e.g. 0.35")
    group.add_argument("--no-probe", action="store_true",
                       help=f"one L for every layer (--hyperplanes, default {DEFAULT_HYPERPLANES}); no probe")
    group.add_argument("--probe", choices=["synthetic", "synthetic-blocky", "fashion-mnist-train"],
                       default="synthetic",
                       help="synthetic: smooth noise (1/f^2 spectrum) with dark regions, data-free "
                            "(default); synthetic-blocky: the first probe, blocky uniform noise, data-free; "
                            "fashion-mnist-train: the first images of the Fashion-MNIST training split, "
                            "unlabelled (calibration: uses data)")
    group.add_argument("--probe-images", type=_ranged(int, 1, 4096, "--probe-images"), default=None,
                       metavar="N", help=f"probe images (default {DEFAULT_PROBE_IMAGES} for inputs up to 32x32, "
                                         "fewer for larger inputs, at least 8)")
    group.add_argument("--candidates", type=_candidates, default=list(DEFAULT_CANDIDATES), metavar="L,L,...",
                       help="hyperplane counts to try per layer (default "
                            f"{','.join(map(str, DEFAULT_CANDIDATES))}, and the budget's L)")
    group.add_argument("--candidate-tiles", type=lambda t: [_tile(x) for x in t.split(",")], default=None,
                       metavar="P,P,...", help="tiles to try per layer, each P or PxQ (default: only --tile)")


def add_data(parser: argparse.ArgumentParser, limit_default: Optional[int] = None) -> None:
    group = parser.add_argument_group(
        "data", "Images are fitted to the model's declared input size (padded with 0 when smaller, resized "
        "bilinearly otherwise), scaled to [0, 1] and normalised with --mean/--std.")
    group.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "mnist", "folder", "imagenet-samples"],
                       help="fashion-mnist (Debian's dataset-fashion-mnist or the haste-onnx cache; default), mnist "
                            "(IDX files in --data-dir), folder (--data-dir/<class>/<image>), imagenet-samples "
                            "(foolbox's 20 ImageNet images)")
    group.add_argument("--data-dir", metavar="DIR", default=None,
                       help="where the data are (required for mnist and folder)")
    group.add_argument("--split", choices=["test", "train"], default="test", help="IDX split (default test)")
    group.add_argument("--limit", type=_ranged(int, 1, None, "--limit"), default=limit_default, metavar="N",
                       help="use only the first N images" + ("" if limit_default is None else
                                                            f" (default {limit_default})"))
    group.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                       help="normalisation mean, one value or one per channel (default 0.2860, or the model's own)")
    group.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                       help="normalisation std, one value or one per channel (default 0.3530, or the model's own)")


def add_output_format(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output format")
    group.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def hashing_options(args):
    from .rewrite.conv_to_haste import DEFAULT_HYPERPLANES, HashingOptions

    return HashingOptions(hyperplanes=args.hyperplanes or DEFAULT_HYPERPLANES, tile=tuple(args.tile),
                          sparsity=args.sparsity, seed=args.seed, centering=not args.no_centering,
                          magnitude_split=args.magnitude_split, merge=args.merge,
                          layer_hyperplanes=tuple(args.layer_hyperplanes), layer_tiles=tuple(args.layer_tile),
                          fuse=not args.no_fuse)


def selection_policy(args):
    from .policy import Policy

    return Policy(include=list(args.include), exclude=list(args.exclude), min_channels=args.min_channels,
                  allow_1x1=args.allow_1x1, allow_strided=args.allow_strided, allow_grouped=args.allow_grouped,
                  allow_first=args.allow_first)


def probe_mode(args) -> Optional[str]:
    """How L is chosen: "target" (--target-cut), "budget" (the default) or None (one L for every layer:
    --hyperplanes or --no-probe, or a subcommand without the probe's options)."""
    if not hasattr(args, "no_probe"):
        return None
    if args.target_cut is not None:
        if args.no_probe:
            raise UsageError("--target-cut and --no-probe contradict each other")
        for given, flag in ((args.probe_budget, "--probe-budget"), (args.budget_draws, "--budget-draws")):
            if given is not None:
                raise UsageError(f"{flag} sets the probe's budget; it has no use with --target-cut")
        return "target"
    if args.no_probe or args.hyperplanes is not None:
        for given, flag in ((args.probe_budget, "--probe-budget"), (args.budget_draws, "--budget-draws")):
            if given is not None:
                raise UsageError(f"{flag} sets the probe's budget; it has no use with "
                                 + ("--no-probe" if args.no_probe else "--hyperplanes (one L for every layer)"))
        return None
    return "budget"


def allocated_options(args, model, threads=2, mean=None, std=None, say=None):
    """(hashing options, policy, Allocation, NoProbe or None): L per layer from the probe unless one L is asked for.

    Under the default (budget) rule a model the probe cannot feed (an input of symbolic size, several
    inputs; no op library) gets one L for every layer, and the NoProbe says why; under --target-cut that
    is an error. A model with nothing to replace is not probed: the rewrite then says why.
    """
    from dataclasses import replace

    from .model_io import CheckError, InputError

    options, policy = hashing_options(args), selection_policy(args)
    mode = probe_mode(args)
    if mode is None:
        return options, policy, None
    from .allocate import BUDGET_DRAWS, NoProbe, allocate, probe_images
    from .rewrite import rewrite_model
    from .runtime import LibraryNotFoundError, get_library_path

    try:
        _, report = rewrite_model(model, options, policy)
    except Exception:  # nothing to replace, or a model the rewrite rejects: it says why, unprobed
        return options, policy, None
    if mode == "budget" and report.summary()["already_haste"]:  # rewriting a rewritten model changes nothing
        return options, replace(policy, already_rewritten=True), None
    if report.summary()["replaced"] == 0:
        return options, policy, None
    try:
        get_library_path()
        images, mean, std = probe_images(model, args.probe, args.probe_images, mean, std)
    except (InputError, LibraryNotFoundError) as err:
        if mode == "budget" and args.probe == "synthetic":
            return options, policy, NoProbe(str(err), options.hyperplanes)
        if isinstance(err, LibraryNotFoundError):
            raise CheckError(str(err)) from err
        raise
    allocation = allocate(model, options, policy, args.target_cut, images=images, probe=args.probe,
                          candidates=args.candidates, threads=threads, mean=mean, std=std, progress=say,
                          tiles=[tuple(t) for t in args.candidate_tiles] if args.candidate_tiles else None,
                          budget_hyperplanes=args.probe_budget, budget_draws=args.budget_draws or BUDGET_DRAWS)
    options, policy = allocation.apply(options, policy)
    return options, policy, allocation


# ---- the parser and the entry point ------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog=PROG, description="HASTE compression of ONNX convolutions (data-free, training-free).",
                     epilog="Exit codes: 0 ok, 1 internal error, 2 usage, 3 input problem, 4 output problem, "
                            "5 nothing to do / model rejected, 6 result check failed. See docs/cli.md.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.configure(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except HasteOnnxError as err:
        if args.debug:
            traceback.print_exc()
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line, unless --debug
        if args.debug:
            traceback.print_exc()
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"{PROG} {args.command}: internal error: {type(err).__name__}: {text} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
