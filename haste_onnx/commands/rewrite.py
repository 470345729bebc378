"""`haste-onnx rewrite IN OUT`: replace eligible Convs by HasteConv.

Steps: load IN (with external data) -> check OUT may be written -> the plan
(`--plan FILE`, or the layer policy then the probe) -> rewrite (`--steerable`:
one rewrite per level and the If chain of rewrite/steer.py) -> write into
a temporary folder beside OUT -> onnx.checker and an onnxruntime load with the
op library on that file -> move into place -> `--save-plan` -> print the
per-layer table and summary lines (or one JSON object with `--json`).
"""
from __future__ import annotations

import json
import sys

from .int8_args import add_int8, int8_pass
from .args import (add_hashing, add_model_input, add_model_output, add_output_format, add_plan_files, add_selection,
                   progress_printer)
from .probe_args import add_inputs, add_probe, decide_plan
from .static_args import add_static, static_pass
from .steer_args import DEFAULT_LEVELS, add_steering, level_plan_path
from .tables import layers_table

HELP = "replace eligible Conv layers by HasteConv"


def configure(parser) -> None:
    add_model_input(parser)
    add_model_output(parser)
    add_plan_files(parser)
    add_hashing(parser)
    add_probe(parser)
    add_inputs(parser)
    add_selection(parser)
    add_static(parser)
    add_int8(parser)
    add_steering(parser)
    add_output_format(parser)


def run(args) -> int:
    from ..check import check_load, check_model
    from ..errors import ModelRejected, UsageError
    from ..model_io import check_output_path, load_model, save_model
    from ..plan import save_plan
    from ..rewrite import RejectedWithReport, rewrite_model
    from ..zoo import resolve_model

    if args.method in ("red", "qsfm") and (args.save_plan or args.plan):
        raise UsageError(f"--method {args.method} makes no HASTE plan: --save-plan and --plan are for haste "
                         "or a +haste method")
    loaded = load_model(resolve_model(args.model)[0])
    # a steerable model's branches each hold the weights: stored once, in OUT.data (save_model's deduplicate)
    external = args.external_data or loaded.has_external_data or args.steerable
    out = check_output_path(args.output, args.force, loaded, external)
    # the probe's progress, for a person watching: stderr otherwise holds only an error line
    say = progress_printer(sys.stderr.isatty() and not args.json)
    if not args.steerable and (args.levels is not None or args.default_level is not None):
        raise UsageError("--levels and --default-level are for --steerable")
    if args.steerable and (args.method != "haste" or args.int8):
        raise UsageError("--steerable is for --method haste without --int8")
    source, static = static_pass(args, loaded.model, progress=say)
    source, int8 = int8_pass(args, source, progress=say)
    if static is not None and "+" not in args.method:
        return _write_plain(args, source, static, int8, out, external)
    plan, probe = decide_plan(args, source, progress=say)
    if static is not None:
        plan = plan.with_layers({}, static=static.to_json()["static"])
    levels = []
    try:
        if args.steerable:
            model, levels, report = _steerable(args, source, plan, probe)
        else:
            model, report = rewrite_model(source, plan)
    except RejectedWithReport as err:
        if int8 is not None and int8.model is not None:  # int8 alone (or with a static pass) did the work
            return _write_plain(args, source, static, int8, out, external, haste=(err.report, plan, probe))
        _print(args, err.report, plan, out, written=False, probe=probe, int8=int8)
        why = probe.nothing_to_do() if hasattr(probe, "nothing_to_do") else None
        if int8 is not None:  # --int8 was asked for and not used: say why, beside HASTE's reason
            raise ModelRejected(f"nothing to do: int8 not used: {int8.reason}; HASTE: {why or str(err)}") from err
        if why:
            raise ModelRejected(f"nothing to do: {why}") from err
        raise

    def check(path: str) -> None:
        check_model(path)
        if not args.no_load_check:
            check_load(path, with_library=True)

    save_model(model, out, external_data=external, check=check, deduplicate=bool(levels))
    if args.save_plan:
        save_plan(plan, args.save_plan)
        for level, level_plan in levels:
            if level < 1:
                save_plan(level_plan, level_plan_path(args.save_plan, level))
    _print(args, report, plan, out, written=True, probe=probe, static=static, int8=int8,
           model=model if levels else None)
    return 0


def _steerable(args, source, plan, probe):
    """(steerable model, [(level, plan)], level 1's report): one rewrite per level, then the If chain."""
    from ..probe.levels import level_plans
    from ..rewrite import rewrite_model
    from ..rewrite.steer import steer_model

    from ..probe import Allocation

    ranked = isinstance(probe, Allocation)  # without a probe nothing ranks the layers: levels 0 and 1
    wanted = args.levels if args.levels is not None else list(DEFAULT_LEVELS) if ranked else [0.0, 1.0]
    if wanted[-1] < 1:
        wanted = wanted + [1.0]
    plans = level_plans(plan, probe, wanted)
    _, report = rewrite_model(source, plan)  # level 1 alone: the table, and RejectedWithReport for nothing to do
    model, _ = steer_model(source, plans, 1.0 if args.default_level is None else args.default_level)
    return model, plans, report


def _write_plain(args, model, static, int8, out, external, haste=None) -> int:
    """A model without HasteConv (a static pass, int8, or both), checked: onnx.checker full check,
    onnxruntime without the op library. `haste`: (report, plan, probe) of a HASTE step that replaced nothing."""
    import onnx

    from ..check import check_load
    from ..errors import CheckError
    from ..model_io import save_model

    def check(path: str) -> None:
        try:
            onnx.checker.check_model(path, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as err:
            raise CheckError(f"the result fails onnx.checker: {str(err).splitlines()[0]}") from err
        if not args.no_load_check:
            check_load(path, with_library=False)

    save_model(model, out, external_data=external, check=check)
    if args.json:
        doc = {"command": "rewrite", "input": str(args.model), "output": str(out), "method": args.method,
               **(static.to_json() if static is not None else {})}
        if int8 is not None:
            doc["int8"] = int8.to_json()
        if haste is not None:
            doc["haste"] = {**haste[0].to_json(), "allocation": haste[2].to_json() if haste[2] is not None else None}
        print(json.dumps(doc, indent=2))
    else:
        _print_steps(static, int8)
        if haste is not None:
            print(f"haste: nothing replaced on the layers left float: {_nothing(haste)}")
        print(f"wrote {out} (a plain ONNX model: onnx.checker full check"
              f"{'' if args.no_load_check else ', loads in onnxruntime without the op library'})")
    sys.stdout.flush()
    return 0


def _print_steps(static, int8) -> None:
    """The static pass's and the int8 tactic's tables and summary lines, for those that ran."""
    for step in (static, int8):
        if step is not None:
            print(step.table())
            print(step.summary_line())


def _nothing(haste) -> str:
    report, _, probe = haste
    why = probe.nothing_to_do() if hasattr(probe, "nothing_to_do") else None
    return why or report.summary_line()


def _print(args, report, plan, out, written: bool, probe=None, static=None, int8=None,
           model=None) -> None:
    """The report; `model`: a steerable model, whose levels follow."""
    from ..rewrite.steer import level_info
    from .tables import levels_table

    steer = level_info(model) if model is not None else None
    if args.json:
        doc = {**(static.to_json() if static is not None else {}),
               **({"int8": int8.to_json()} if int8 is not None else {}),
               "command": "rewrite", "input": str(args.model), "output": str(out) if written else None,
               "load_check": None if not written else ("skipped" if args.no_load_check else "onnxruntime"),
               "plan_file": args.plan, "saved_plan": args.save_plan if written else None, **report.to_json()}
        if probe is not None:
            doc["allocation"] = probe.to_json()
        if steer is not None:
            doc["steerable"] = steer
        print(json.dumps(doc, indent=2))
        return
    _print_steps(static, int8)
    print(layers_table(with_times(report.layers, plan)))
    lines = []
    if args.plan:
        lines.append(f"plan from {args.plan} (no probe)")
    if probe is not None:
        lines.append(probe.summary_line())
        if getattr(probe, "inputs", None):
            lines.append(f"probe images: {probe.inputs}")
    if written or report.count("replaced"):
        lines.append(plan.summary_line())
    lines.append(report.summary_line())
    if written:
        check = "not load-checked" if args.no_load_check else "loads in onnxruntime"
        lines.append(f"wrote {out} ({check})")
        if args.save_plan:
            lines.append(f"wrote the plan to {args.save_plan}")
    if steer is not None:
        lines += ["", levels_table(steer)]
    print("\n".join(lines))
    sys.stdout.flush()


def with_times(rows, plan):
    """The table's rows with the layer times the probe measured: `Conv -> HasteConv ms`, or the Conv's alone."""
    from dataclasses import replace

    by_site = plan.by_site()
    out = []
    for row in rows:
        probe = (by_site.get(row.node).probe or {}) if row.node in by_site else {}
        if probe.get("conv_ms") is not None and " ms" not in (row.reason or ""):
            timed = (f"{probe['conv_ms']:.3f} -> {probe['haste_ms']:.3f} ms" if probe.get("haste_ms") is not None
                     else f"Conv {probe['conv_ms']:.3f} ms")
            row = replace(row, note=f"{row.note}; {timed}" if row.note else timed)
        out.append(row)
    return out
