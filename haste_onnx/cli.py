"""The `haste-onnx` command line: builds the parser from the subcommand modules and dispatches.

Each subcommand is a module of `haste_onnx.commands` listed in `SUBCOMMANDS`,
defining `HELP` (one line), `configure(parser)` (its arguments, from the
shared groups of `commands/args.py`) and `run(args) -> int`. A subcommand
imports its heavy dependencies inside `run`, so that `--help` stays fast.

Errors are one line on stderr, `haste-onnx <command>: error: <problem>`, with
no traceback unless `--debug` is given; usage errors add a second line naming
`--help`. Exit codes are in `haste_onnx.errors`.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import List, Optional

from .errors import EXIT_INTERNAL, EXIT_USAGE, HasteOnnxError

PROG = "haste-onnx"

# name -> module in haste_onnx.commands
SUBCOMMANDS = {
    "rewrite": "rewrite",
    "strip": "strip",
    "info": "info",
    "eval": "eval",
    "bench": "bench",
    "demo": "demo",
    "compare": "compare",
    "fetch-data": "fetch_data",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (and a second line naming --help), exit code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


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
        module = importlib.import_module(f"haste_onnx.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.configure(p)
        p.set_defaults(run=module.run, _parser=p)
    return parser


def _explicit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> set:
    """The options whose value differs from the parser's default: those the user gave."""
    return {a.dest for a in parser._actions
            if a.dest not in ("help", "run", "_parser") and getattr(args, a.dest, None) != a.default}


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser, so the error names the subcommand
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.explicit = _explicit(args._parser, args)
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
