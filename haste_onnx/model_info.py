"""Op counts, conv MACs and the HasteConv settings of every layer of a model, as plain data."""
from __future__ import annotations

from collections import Counter


def model_info(model) -> dict:
    """Everything `info` shows, as plain data (the `--json` object without `model`)."""
    from .rewrite.report import haste_settings, layer_row
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
