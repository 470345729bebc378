"""`haste-onnx rewrite IN OUT`: replace eligible Convs by HasteConv.

Steps: load IN (with external data) -> check OUT may be written -> rewrite ->
write into a temporary folder beside OUT -> onnx.checker and an onnxruntime
load with the op library on that file -> move into place -> print the
per-layer table and a summary line (or one JSON object with `--json`).
"""
from __future__ import annotations

import json
import sys

HELP = "replace eligible Conv layers by HasteConv"


def configure(parser) -> None:
    from ..cli import add_allocation, add_hashing, add_model_input, add_model_output, add_output_format, add_selection

    add_model_input(parser)
    add_model_output(parser)
    add_hashing(parser)
    add_allocation(parser)
    add_selection(parser)
    add_output_format(parser)


def run(args) -> int:
    from ..check import check_load, check_model
    from ..cli import allocated_options
    from ..model_io import check_output_path, load_model, save_model
    from ..zoo import resolve_model
    from . import RejectedWithReport, rewrite_model

    loaded = load_model(resolve_model(args.model)[0])
    external = args.external_data or loaded.has_external_data
    out = check_output_path(args.output, args.force, loaded, external)
    # the probe's progress, for a person watching: stderr otherwise holds only an error line
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if sys.stderr.isatty() and not args.json else None
    options, policy, allocation = allocated_options(args, loaded.model, say=say)
    try:
        model, report = rewrite_model(loaded.model, options, policy)
    except RejectedWithReport as err:
        _print(args, err.report, out, written=False, allocation=allocation)
        raise

    def check(path: str) -> None:
        check_model(path)
        if not args.no_load_check:
            check_load(path, with_library=True)

    save_model(model, out, external_data=external, check=check)
    _print(args, report, out, written=True, allocation=allocation)
    return 0


def _print(args, report, out, written: bool, allocation=None) -> None:
    from ..info import layers_table

    if args.json:
        doc = {"command": "rewrite", "input": str(args.model), "output": str(out) if written else None,
               "load_check": None if not written else ("skipped" if args.no_load_check else "onnxruntime"),
               **report.to_json()}
        if allocation is not None:
            doc["allocation"] = allocation.to_json()
        print(json.dumps(doc, indent=2))
        return
    print(layers_table(report.layers))
    line = report.summary_line()
    if allocation is not None:
        line = allocation.summary_line() + "\n" + line
    if written:
        check = "not load-checked" if args.no_load_check else "loads in onnxruntime"
        line += f"\nwrote {out} ({check})"
    print(line)
    sys.stdout.flush()
