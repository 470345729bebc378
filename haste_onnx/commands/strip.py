"""`haste-onnx strip IN OUT`: turn every HasteConv back into the Conv it came from.

The result is a plain ONNX model: it is checked with onnx.checker and loaded
in onnxruntime without the op library before it is moved into place.
"""
from __future__ import annotations

import json

from .args import add_model_input, add_model_output, add_output_format
from .tables import layers_table

HELP = "turn every HasteConv back into the Conv it came from"


def configure(parser) -> None:
    add_model_input(parser)
    add_model_output(parser)
    add_output_format(parser)


def run(args) -> int:
    from ..check import check_load, check_model
    from ..model_io import check_output_path, load_model, save_model
    from ..rewrite import strip_model
    from ..zoo import resolve_model

    loaded = load_model(resolve_model(args.model)[0])
    external = args.external_data or loaded.has_external_data
    out = check_output_path(args.output, args.force, loaded, external)
    model, report = strip_model(loaded.model)

    def check(path: str) -> None:
        check_model(path)
        if not args.no_load_check:
            check_load(path, with_library=False)

    save_model(model, out, external_data=external, check=check)
    if args.json:
        print(json.dumps({"command": "strip", "input": str(args.model), "output": str(out), **report.to_json()},
                         indent=2))
    else:
        print(layers_table(report.layers))
        print(f"{report.summary_line()}\nwrote {out}")
    return 0
