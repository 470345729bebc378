"""Conv work of a model: dense MACs from shapes, and what the kernel's counters measured, per layer and in all."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import onnx

from ..op.stats import Counters


def conv_layers(model: onnx.ModelProto) -> List[dict]:
    """Every Conv and HasteConv (traversal order) with its dense MACs per image from shapes."""
    from ..rewrite.analysis import collect

    rows = []
    for site in collect(model):
        rows.append({"node": site.name, "output": site.node.output[0] if site.node.output else "", "op": site.op,
                     "input_shape": site.input_shape, "kernel": site.kernel, "stride": site.strides if site.kernel else None,
                     "group": site.group, "in_channels": site.in_channels, "out_channels": site.out_channels,
                     "macs": site.macs})
    return rows


def conv_macs_per_image(model: onnx.ModelProto) -> int:
    """Dense MACs per image of every Conv and HasteConv whose size is known."""
    return sum(r["macs"] for r in conv_layers(model) if r["macs"] is not None)


def static_by_layer(static_rows: List[dict]) -> Dict[str, dict]:
    """Static conv rows by output name and by node name: a HasteConv that absorbed a following Add or
    Relu (rewrite/fuse_activation.py) writes another output but keeps the Conv's node name."""
    return {**{("node", r["node"]): r for r in static_rows}, **{r["output"]: r for r in static_rows}}


def layer_rows(pairs, totals: np.ndarray, static: Dict, n: int, model: Optional[onnx.ModelProto] = None) -> List[dict]:
    """Per measured layer (`pairs` from `instrument.add_stats_outputs`, `totals` its summed counters over `n`
    images): the counters per image, the overheads, C'/C and the MAC cut, with the layer's static facts."""
    names = {node.output[0]: node.name for node in model.graph.node} if model is not None else {}
    rows = []
    for (out, _), t in zip(pairs, totals):
        s = static.get(out) or static.get(("node", names.get(out))) or {}
        counters = Counters.from_array(t)
        c, overhead = counters.as_dict(), counters.overhead_ops
        rows.append({
            "node": s.get("node", out), "input_shape": s.get("input_shape"), "kernel": s.get("kernel"),
            "static_macs": s.get("macs"),
            "dense_macs": c["dense_macs"] / n, "haste_macs": c["haste_macs"] / n, "overhead_ops": overhead / n,
            "centering_ops": c["centering_ops"] / n, "hashing_ops": c["hashing_ops"] / n, "merge_ops": c["merge_ops"] / n,
            "channel_ratio": c["merged_channels"] / c["channels"] if c["channels"] else None,
            "mac_reduction": 1 - c["haste_macs"] / c["dense_macs"] if c["dense_macs"] else None,
            "counters": c,
        })
    return rows


def totals(layers: List[dict], original_macs: float) -> dict:
    """The cut of all conv MACs and of the replaced layers' MACs, without and with the overheads."""
    dense = sum(r["dense_macs"] for r in layers)
    haste = sum(r["haste_macs"] for r in layers)
    over = sum(r["overhead_ops"] for r in layers)
    merged = sum(r["counters"]["merged_channels"] for r in layers)
    channels = sum(r["counters"]["channels"] for r in layers)
    saved = dense - haste
    return {
        "original_conv_macs": original_macs,
        "replaced_dense_macs": dense,
        "replaced_haste_macs": haste,
        "overhead_ops": over,
        "rewritten_conv_macs": original_macs - saved,
        "rewritten_conv_macs_with_overheads": original_macs - saved + over,
        "conv_mac_reduction": saved / original_macs if original_macs else None,
        "conv_mac_reduction_with_overheads": (saved - over) / original_macs if original_macs else None,
        "replaced_mac_reduction": saved / dense if dense else None,
        "replaced_mac_reduction_with_overheads": (saved - over) / dense if dense else None,
        "channel_ratio": merged / channels if channels else None,
    }
