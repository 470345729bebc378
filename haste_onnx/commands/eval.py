"""`haste-onnx eval MODEL`: accuracy and measured conv MACs of a model before and after the rewrite, on real data.

The data (`--data`), the plan per seed (the probe measures each seed's own
hyperplanes, so every seed is the model `rewrite --seed S` writes) and the
printing live here; the measuring is `haste_onnx.measure.evaluate`.
"""
from __future__ import annotations

import json

from .args import (add_data, add_hashing, add_output_format, add_runtime, add_selection, data_source, progress_printer,
                   refuse_together)
from .probe_args import add_inputs, add_probe, decide_plan
from .static_args import add_static, static_pass
from .steer_args import add_level_sweep
from .tables import format_table

HELP = "accuracy and measured conv MACs of a model before and after the rewrite, on real data"


def configure(parser) -> None:
    group = parser.add_argument_group("model input")
    group.add_argument("model", metavar="MODEL",
                       help="an ONNX file, or a model name: resnet20 (bundled), resnet18, resnet34, vgg16, mobilenetv2")
    add_data(parser)
    add_runtime(parser)
    add_hashing(parser)
    add_probe(parser)
    add_inputs(parser)
    parser.add_argument_group("seeds").add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="N",
        help="run the rewrite with each of these base seeds (instead of --seed) and report mean and spread")
    add_selection(parser)
    add_static(parser)
    add_level_sweep(parser)
    add_output_format(parser)


def load_named_model(spec):
    """(LoadedModel, zoo entry or None) for a path or a model name."""
    from ..model_io import load_model
    from ..zoo import resolve_model

    path, entry = resolve_model(spec)
    return load_model(path), entry


def load_model_and_data(args, fetch: bool = False, say=None):
    """(LoadedModel, zoo entry, images, labels, data description) from the model and data options."""
    from ..data.sources import load_data

    loaded, entry = load_named_model(args.model)
    images, labels, info = load_data(data_source(args), loaded.model, (entry.mean, entry.std) if entry else None,
                                     fetch=fetch, say=say)
    return loaded, entry, images, labels, info


def seed_plans(args, model, plan, probe, mean, std, progress):
    """Each seed's plan when the probe chose this one (it measured that seed's hyperplanes), else None."""
    from ..measure.evaluate import SeedPlan
    from ..probe import Allocation

    if not isinstance(probe, Allocation) or not args.seeds:
        return None
    plans = []
    for seed in args.seeds:
        if seed == args.seed:
            plans.append(SeedPlan(seed, plan, probe.to_json()))
        else:
            p, a = decide_plan(args, model, args.threads, mean, std, progress, seed=seed)
            plans.append(SeedPlan(seed, p, a.to_json() if a is not None else None))
    return plans


def run(args) -> int:
    from ..errors import InputError
    from ..measure.evaluate import EvalOptions, evaluate
    from ..measure.versions import versions
    from .args import hashing_options, selection_policy

    refuse_together(args, "seeds", ("seed",))
    loaded, entry, images, labels, data_info = load_model_and_data(args)
    progress = progress_printer(not args.json)
    if args.levels is not None:
        return eval_levels(args, loaded, entry, images, labels, data_info, progress)
    source, static = static_pass(args, loaded.model, args.threads, data_info["mean"], data_info["std"], progress)
    if static is not None:
        return eval_static(args, loaded, entry, images, labels, data_info, source, static, progress)
    plan, probe = decide_plan(args, loaded.model, args.threads, data_info["mean"], data_info["std"], progress)
    plans = seed_plans(args, loaded.model, plan, probe, data_info["mean"], data_info["std"], progress)
    if plans is None and probe is not None and hasattr(probe, "apply_to"):
        from ..measure.evaluate import SeedPlan

        plans = [SeedPlan(args.seed, plan, probe.to_json())]
    options = EvalOptions(hashing=hashing_options(args), policy=selection_policy(args), seeds=args.seeds,
                          batch=args.batch, threads=args.threads, plans=plans)
    try:
        result = evaluate(loaded.model, images, labels, options, progress=progress)
    except ValueError as err:
        raise InputError(str(err)) from err
    doc = {"command": "eval", "model": str(loaded.path), "model_name": entry.name if entry else None,
           "versions": versions(), "data": data_info, **result}
    if probe is not None:
        doc["allocation"] = probe.to_json()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_result(doc))
    return 0


def eval_levels(args, loaded, entry, images, labels, data_info, progress) -> int:
    """--levels: a steerable model measured at each level (measure/levels.py)."""
    from ..errors import InputError
    from ..measure.levels import evaluate_levels, levels_text
    from ..measure.versions import versions
    from .args import HASHING_DESTS, SELECTION_DESTS
    from .probe_args import PROBE_DESTS

    refuse_together(args, "levels", HASHING_DESTS + PROBE_DESTS + SELECTION_DESTS + ("seeds",))
    try:
        result = evaluate_levels(loaded.model, images, labels, args.levels, args.batch, args.threads,
                                 progress=progress)
    except ValueError as err:
        raise InputError(str(err)) from err
    doc = {"command": "eval", "model": str(loaded.path), "versions": versions(), "data": data_info, **result}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    o = result["original"]
    print(format_table(["level", "runs", "HasteConv", "top-1", "difference", "agreement", "conv MACs/image",
                        "cut"], levels_text(result), right=(2, 3, 4, 5, 6, 7)))
    print(f"original: top-1 {100 * o['accuracy']:.2f}% on {result['images']} images, {o['conv_macs'] / 1e6:.2f} M "
          "conv MACs per image; MACs measured by the kernel's counters (overheads counted), accuracy from one "
          "session of the steerable model")
    return 0


def eval_static(args, loaded, entry, images, labels, data_info, source, static, progress) -> int:
    """--method red|qsfm[+haste]: accuracy of the original, of the static model and (+haste) of its HASTE
    rewrite, with conv MACs: the static model's are dense (exact), the HASTE rewrite's measured by the kernel's
    counters (overheads counted) as `eval` measures them."""
    import numpy as np

    from ..measure.evaluate import EvalOptions, SeedPlan, evaluate
    from ..measure.versions import versions
    from ..runtime import inference_session
    from .args import hashing_options, selection_policy

    def predict(model):
        session = inference_session(model, threads=args.threads)
        feed = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {feed: images[i:i + args.batch]})[0].argmax(axis=1)
                               for i in range(0, len(images), args.batch)])

    p0, p1 = predict(loaded.model), predict(source)
    before, after = static.macs_before, static.macs_after
    doc = {"command": "eval", "method": args.method, "model": str(loaded.path),
           "model_name": entry.name if entry else None, "versions": versions(), "data": data_info,
           "original": {"accuracy": float(np.mean(p0 == labels)), "conv_macs": before},
           "static_model": {"accuracy": float(np.mean(p1 == labels)), "agreement": float(np.mean(p0 == p1)),
                            "conv_macs": after, "conv_mac_reduction": 1 - after / before if before else None},
           **static.to_json()}
    final = doc["static_model"]
    if "+" in args.method:
        plan, probe = decide_plan(args, source, args.threads, data_info["mean"], data_info["std"], progress)
        plans = [SeedPlan(args.seed, plan, probe.to_json() if probe is not None and hasattr(probe, "to_json")
                          else None)]
        options = EvalOptions(hashing=hashing_options(args), policy=selection_policy(args), seeds=None,
                              batch=args.batch, threads=args.threads, plans=plans)
        result = evaluate(source, images, labels, options, progress=progress)
        run = result["runs"][0]
        measured = run["totals"]["rewritten_conv_macs_with_overheads"]
        doc["haste"] = {"accuracy": run["accuracy"], "conv_macs_with_overheads": measured,
                        "conv_mac_reduction_with_overheads": 1 - measured / before if before else None,
                        "plan": run.get("plan")}
        final = {"accuracy": run["accuracy"], "conv_mac_reduction": doc["haste"]["conv_mac_reduction_with_overheads"]}
    doc["result"] = {"accuracy": final["accuracy"], "difference": final["accuracy"] - doc["original"]["accuracy"],
                     "conv_mac_reduction": final["conv_mac_reduction"]}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(static.table())
    print(static.summary_line())
    o, r = doc["original"], doc["result"]
    print(f"data: {len(labels)} images ({data_info['source']})")
    print(f"top-1: original {_pct(o['accuracy'])}, {args.method} {_pct(r['accuracy'])} "
          f"({100 * r['difference']:+.2f} pt); conv MACs cut {_pct(r['conv_mac_reduction'], 1)}"
          + (" (HASTE overheads counted)" if "+" in args.method else " (dense: exact)"))
    return 0


# ---- the table -----------------------------------------------------------------------------------

def _pct(x, digits=2) -> str:
    return "?" if x is None else f"{100 * x:.{digits}f}%"


def _m(x) -> str:
    return "?" if x is None else f"{x / 1e6:,.2f} M"


def _ci(ci) -> str:
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def _pm(s: dict, scale: float = 100, unit: str = "%") -> str:
    if s["mean"] is None:
        return "?"
    if s["n"] == 1:
        return f"{scale * s['mean']:.2f}{unit}"
    return f"{scale * s['mean']:.2f}{unit} +- {scale * s['std']:.2f} (min {scale * s['min']:.2f}, max {scale * s['max']:.2f})"


def mean_layers(runs) -> list:
    """Per-layer rows averaged over the runs (same model structure for every seed)."""
    first = runs[0]["layers"]
    keys = ("dense_macs", "haste_macs", "overhead_ops", "channel_ratio", "mac_reduction")
    rows = []
    for i, row in enumerate(first):
        out = dict(row)
        for k in keys:
            vals = [r["layers"][i][k] for r in runs if r["layers"][i][k] is not None]
            out[k] = sum(vals) / len(vals) if vals else None
        rows.append(out)
    return rows


def format_result(doc: dict) -> str:
    from ..probe import allocation_line
    from ..rewrite.analysis import format_dims

    s = doc["settings"]
    d = doc["data"]
    runs = doc["runs"]
    parts = [f"model: {doc['model']}",
             f"data: {d['images']} images, {d['source']}" + (f" {d['split']} split" if d.get("split") else "")
             + f" ({d['where']}); mean {d['mean']}, std {d['std']}",
             f"onnxruntime {doc['versions']['onnxruntime']}, batch {s['batch']}, {s['threads']} threads"]
    h = s["hashing"]
    if isinstance(h, dict):
        parts.append(f"rewrite: {runs[0].get('plan', '?')}, sparsity {h['sparsity']}, "
                     f"centering {'on' if h['centering'] else 'off'}"
                     + (", magnitude split" if h.get("magnitude_split") else "")
                     + f", seeds {' '.join(map(str, s['seeds']))}")
    else:
        parts.append("rewrite: none; the model's own HasteConv layers (original = stripped to Conv)")
    if any(r.get("allocation") for r in runs):  # probed once per seed
        parts += [f"seed {r['seed']}: {allocation_line(r['allocation'])}" for r in runs if r.get("allocation")]
    elif doc.get("allocation"):
        parts.append(allocation_line(doc["allocation"]))
    parts.append("")
    title = "per replaced layer, per image" + (f" (mean over {len(runs)} seeds)" if len(runs) > 1 else "")
    parts.append(title + ":")
    rows = [(r["node"], format_dims(r["input_shape"]), format_dims(r["kernel"]), f"{r['dense_macs']:,.0f}",
             f"{r['haste_macs']:,.0f}", f"{r['overhead_ops']:,.0f}",
             "?" if r["channel_ratio"] is None else f"{r['channel_ratio']:.3f}", _pct(r["mac_reduction"], 1))
            for r in mean_layers(runs)]
    parts.append(format_table(["node", "input shape", "kernel", "dense MACs", "HASTE MACs", "overhead ops",
                               "C'/C", "MAC cut"], rows, right=(3, 4, 5, 6, 7)))
    parts.append("")
    o = doc["original"]
    acc_rows = [("original", _pct(o["accuracy"]), _ci(o["ci95"]), "", "", "", _m(o["conv_macs"]), "")]
    for r in runs:
        t = r["totals"]
        acc_rows.append(("rewritten" + ("" if r["seed"] is None else f" seed {r['seed']}"), _pct(r["accuracy"]),
                         _ci(r["ci95"]), f"{100 * r['difference']['accuracy']:+.2f} pt",
                         _ci(r["difference"]["ci95"]).replace("[", "[").replace("]", "] pt"),
                         _pct(r["agreement"]), _m(t["rewritten_conv_macs"]), _m(t["rewritten_conv_macs_with_overheads"])))
    parts.append(format_table(["model", "top-1", "95% CI", "difference", "95% CI", "agreement", "conv MACs/image",
                               "+ overheads"], acc_rows, right=(1, 3, 5, 6, 7)))
    parts.append("(accuracy CI: Wilson score; difference CI: paired bootstrap over images, "
                 f"{s['bootstrap_resamples']} resamples; overheads: centring + hashing + merge ops, counted as MACs)")
    parts.append("")
    sm = doc["summary"]
    t0 = runs[0]["totals"]
    n_haste = runs[0]["haste_layers"]
    seeds = f" over {len(runs)} seeds (mean +- std)" if len(runs) > 1 else ""
    parts.append(f"summary{seeds}:")
    parts.append(f"  top-1: original {_pct(o['accuracy'])}, rewritten {_pm(sm['accuracy'])}; "
                 f"difference {_pm(sm['difference'], unit=' pt')}; agreement {_pm(sm['agreement'])}")
    parts.append(f"  all conv MACs ({o['conv_layers']} layers, {_m(o['conv_macs'])} per image): "
                 f"cut {_pm(sm['conv_mac_reduction'])} measured, {_pm(sm['conv_mac_reduction_with_overheads'])} "
                 "with overheads")
    parts.append(f"  replaced convs ({n_haste} layers, {_m(t0['replaced_dense_macs'])} per image dense): "
                 f"cut {_pm(sm['replaced_mac_reduction'])}, {_pm(sm['replaced_mac_reduction_with_overheads'])} "
                 f"with overheads; mean C'/C {_pm(sm['channel_ratio'], scale=1, unit='')}")
    if runs[0]["unmeasured_layers"]:
        parts.append(f"  note: {runs[0]['unmeasured_layers']} HasteConv layer(s) inside subgraphs are not measured")
    if o["layers_with_unknown_macs"]:
        parts.append(f"  note: {o['layers_with_unknown_macs']} conv layer(s) of unknown size are not in the totals")
    return "\n".join(parts)
