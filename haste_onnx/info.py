"""`haste-onnx info MODEL`: op counts, conv MACs and HasteConv settings per layer; and the tables.

MACs are dense multiply-accumulates per image (batch item):
`C_out * C_in/group * kH * kW * H_out * W_out`, also for HasteConv layers
(what the layer would cost as a Conv). A layer whose spatial size is unknown
(dynamic dimensions) shows `?` and is left out of the totals.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import List, Optional, Sequence

HELP = "show op counts, conv MACs and the HasteConv settings of each layer"


def configure(parser) -> None:
    from .cli import add_model_input, add_output_format

    add_model_input(parser, metavar="MODEL")
    add_output_format(parser)


def run(args) -> int:
    from .model_io import load_model
    from .zoo import resolve_model

    loaded = load_model(resolve_model(args.model)[0])
    info = model_info(loaded.model)
    info = {"model": str(args.model), "external_data": [str(p) for p in loaded.external_files], **info}
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def model_info(model) -> dict:
    """Everything `info` shows, as plain data (the `--json` object without `model`)."""
    from .rewrite import haste_settings, layer_row
    from .rewrite.analysis import collect
    from .rewrite.graphs import walk

    counts: Counter = Counter()
    for _, node in walk(model.graph):
        counts[f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type] += 1
    rows = []
    for site in collect(model):
        row = layer_row(site, "HasteConv" if site.op != "Conv" else "Conv",
                        settings=haste_settings(site) if site.op != "Conv" else None)
        rows.append(row.to_json())
    known = [r["macs"] for r in rows if r["macs"] is not None]
    haste = [r["macs"] for r in rows if r["macs"] is not None and r["op"] != "Conv"]
    return {
        "ir_version": int(model.ir_version),
        "opsets": {(op.domain or "ai.onnx"): int(op.version) for op in model.opset_import},
        "nodes": sum(counts.values()),
        "op_counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "conv_layers": len(rows),
        "haste_layers": sum(1 for r in rows if r["op"] != "Conv"),
        "conv_macs": sum(known),
        "haste_macs": sum(haste),
        "layers_with_unknown_macs": len(rows) - len(known),
        "layers": rows,
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence], right: Sequence[int] = ()) -> str:
    """A plain-text table; columns in `right` are right-aligned."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def _dims(d: Optional[list]) -> str:
    from .rewrite.analysis import format_dims

    return format_dims(d)


def _macs(m: Optional[int]) -> str:
    return "?" if m is None else f"{m:,}"


def layers_table(layers) -> str:
    """The per-layer table of rewrite and strip: node, input shape, kernel, stride, MACs, result."""
    rows = [(r.node, _dims(r.input_shape), _dims(r.kernel), _dims(r.stride), _macs(r.macs), r.outcome())
            for r in layers]
    return format_table(["node", "input shape", "kernel", "stride", "MACs", "result"], rows, right=(4,))


def format_info(info: dict) -> str:
    opsets = ", ".join(f"{d} {v}" for d, v in info["opsets"].items())
    parts = [f"model: {info['model']} (IR {info['ir_version']}; opsets {opsets}; {info['nodes']} nodes)"]
    if info.get("external_data"):
        parts.append(f"external data: {', '.join(info['external_data'])}")
    parts.append("")
    parts.append(format_table(["op", "count"], list(info["op_counts"].items()), right=(1,)))
    if info["layers"]:
        parts.append("")
        rows = []
        for r in info["layers"]:
            s = r["settings"] or {}
            rows.append((r["node"], r["op"], _dims(r["input_shape"]), _dims(r["kernel"]), _dims(r["stride"]),
                         r["group"], f"{r['in_channels']}->{r['out_channels']}", _macs(r["macs"]),
                         s.get("hyperplanes", ""), _dims(s["tile"]) if s else "", _dims(s["patch"]) if s else "",
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
    return "\n".join(parts)
