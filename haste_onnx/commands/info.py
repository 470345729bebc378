"""`haste-onnx info MODEL`: op counts, conv MACs and HasteConv settings per layer.

MACs are dense multiply-accumulates per image (batch item):
`C_out * C_in/group * kH * kW * H_out * W_out`, also for HasteConv layers
(what the layer would cost as a Conv). A layer whose spatial size is unknown
(dynamic dimensions) shows `?` and is left out of the totals.

A steerable model (rewrite --steerable) shows the levels it offers, and the
layers of its strongest level (the branch that level 1 runs).
"""
from __future__ import annotations

import json

from .args import add_model_input, add_output_format
from .tables import dims, format_table, levels_table, macs

HELP = "show op counts, conv MACs and the HasteConv settings of each layer"


def configure(parser) -> None:
    add_model_input(parser, metavar="MODEL")
    add_output_format(parser)


def run(args) -> int:
    from ..model_info import model_info
    from ..model_io import load_model
    from ..zoo import resolve_model

    from ..rewrite.steer import level_info, select_level

    loaded = load_model(resolve_model(args.model)[0])
    levels = level_info(loaded.model)
    info = model_info(loaded.model if levels is None else select_level(loaded.model, 1.0))
    info = {"model": str(args.model), "external_data": [str(p) for p in loaded.external_files], **info}
    if levels is not None:
        info["steerable"] = levels
    static = next((p.value for p in loaded.model.metadata_props if p.key == "haste_onnx.static"), None)
    if static:
        info["static"] = json.loads(static)
    int8 = next((p.value for p in loaded.model.metadata_props if p.key == "haste_onnx.int8"), None)
    if int8:
        info["int8"] = json.loads(int8)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def format_info(info: dict) -> str:
    opsets = ", ".join(f"{d} {v}" for d, v in info["opsets"].items())
    parts = [f"model: {info['model']} (IR {info['ir_version']}; opsets {opsets}; {info['nodes']} nodes)"]
    if info.get("external_data"):
        parts.append(f"external data: {', '.join(info['external_data'])}")
    if info.get("steerable"):
        parts += ["", "steerable: the levels it offers (haste_level)", levels_table(info["steerable"]), "",
                  "the strongest level's branch (level 1):"]
    parts.append("")
    parts.append(format_table(["op", "count"], list(info["op_counts"].items()), right=(1,)))
    if info["layers"]:
        parts.append("")
        rows = []
        for r in info["layers"]:
            s = r["settings"] or {}
            rows.append((r["node"], r["op"], dims(r["input_shape"]), dims(r["kernel"]), dims(r["stride"]),
                         r["group"], f"{r['in_channels']}->{r['out_channels']}", macs(r["macs"]),
                         s.get("hyperplanes", ""), dims(s["tile"]) if s else "", dims(s["patch"]) if s else "",
                         s.get("sparsity", ""), s.get("seed", ""), ("" if not s else int(s["centering"]))))
        parts.append(format_table(["node", "op", "input shape", "kernel", "stride", "group", "channels", "MACs",
                                   "L", "tile", "patch", "sparsity", "seed", "centering"], rows, right=(7,)))
    total = info["conv_macs"]
    share = f"{100 * info['haste_macs'] / total:.1f}%" if total else "0%"
    line = (f"{info['conv_layers']} conv layers, {info['haste_layers']} of them HasteConv; "
            f"{total / 1e6:.2f} M conv MACs per image, {share} in HasteConv")
    if info["layers_with_unknown_macs"]:
        line += f" ({info['layers_with_unknown_macs']} layer(s) of unknown size not counted)"
    parts.append(line)
    if info.get("static"):
        st = info["static"]
        rows = [(name, r["channels_in"], r["channels_out"], macs(r["macs_before"]))
                for name, r in st["layers"].items()]
        parts += ["", f"static pass: --method {st['method']}; conv MACs {st['conv_macs_before'] / 1e6:.2f} M -> "
                      f"{st['conv_macs_after'] / 1e6:.2f} M per image; channels and MACs before it:",
                  format_table(["node", "C_in", "C_out", "MACs before"], rows, right=(3,))]
    if info.get("int8"):
        q = info["int8"]
        floats = {n: t for n, t in q["layers"].items() if t != "int8"}
        parts += ["", f"int8 (onnxruntime's quantize_static, QDQ per-channel U8S8): {len(q['layers']) - len(floats)} "
                      f"of {len(q['layers'])} weighted layers; calibrated on {q['calibration'].split(':')[0]}"]
        parts += [f"  {n}: {t}" for n, t in floats.items()]
    return "\n".join(parts)
