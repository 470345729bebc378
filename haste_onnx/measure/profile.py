"""Per-layer times from onnxruntime's profiler, matched to the model's conv layers."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import onnx

from ..op.geometry import DOMAIN, OP_TYPE
from .sessions import bench_session

FUSABLE = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh", "HardSwish", "Add", "Sum",
           "BatchNormalization", "Mul"}


def parse_profile(path, runs: int) -> Dict[str, dict]:
    """Node kernel times of the last `runs` model runs in an onnxruntime profile JSON.

    Returns {node name: {"op", "ms" (mean per run), "inputs" (input shapes)}}.
    """
    events = json.loads(Path(path).read_text())
    model_runs = sorted((e for e in events if e.get("name") == "model_run" and e.get("cat") == "Session"),
                        key=lambda e: e["ts"])
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs[-runs:]] if runs else []
    n = max(len(windows), 1)
    nodes: Dict[str, dict] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if windows and not any(lo <= e["ts"] <= hi for lo, hi in windows):
            continue
        args = e.get("args", {})
        key = name[:-len("_kernel_time")]
        row = nodes.setdefault(key, {"op": args.get("op_name", "?"), "ms": 0.0,
                                     "inputs": [next(iter(s.values())) for s in args.get("input_type_shape", [])
                                                if isinstance(s, dict) and s]})
        row["ms"] += e["dur"] / 1e3 / n
    run_ms = sum(hi - lo for lo, hi in windows) / 1e3 / n if windows else None
    return {"nodes": nodes, "run_ms": run_ms, "runs": len(windows)}


def _conv_nodes(model: onnx.ModelProto) -> List[onnx.NodeProto]:
    return [n for n in model.graph.node if (n.op_type == "Conv" and n.domain in ("", "ai.onnx"))
            or (n.op_type == OP_TYPE and n.domain == DOMAIN)]


def _weight_shapes(model: onnx.ModelProto) -> Dict[str, list]:
    return {i.name: list(i.dims) for i in model.graph.initializer}


def _name_keys(model: onnx.ModelProto, node: onnx.NodeProto, hops: int = 3) -> Dict[str, Tuple[int, str]]:
    """Names onnxruntime may give `node` (or the node it is fused into) -> (rank, ops fused on the way)."""
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    keys: Dict[str, Tuple[int, str]] = {}

    def add(key, rank, fused):
        if key and (key not in keys or keys[key][0] > rank):
            keys[key] = (rank, fused)

    add(node.name, 0, "")
    tensor = node.output[0] if node.output else ""
    add(tensor, 0, "")
    add(tensor + "_nchwc", 0, "")
    fused = []
    for hop in range(1, hops + 1):
        users = consumers.get(tensor, [])
        if len(users) != 1 or users[0].op_type not in FUSABLE or not users[0].output:
            break
        fused.append(users[0].op_type)
        tensor = users[0].output[0]
        label = "+".join(fused)
        add(tensor + "_nchwc", hop, label)
        add(tensor, hop, label)
        add(users[0].name, hop, label)
    return keys


def _fused_ops(model: onnx.ModelProto, conv: onnx.NodeProto, event: dict, profile: Dict[str, dict]) -> str:
    """The ops after `conv` that onnxruntime folded into its kernel: those with no profile event of their own.

    An Add/Sum counts only when the kernel took it as an extra input (the NCHWc "Sum" fusion).
    """
    if event["op"] == OP_TYPE:
        return ""
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    fused = []
    tensor = conv.output[0] if conv.output else ""
    for _ in range(3):
        users = consumers.get(tensor, [])
        if len(users) != 1 or users[0].op_type not in FUSABLE or not users[0].output:
            break
        user = users[0]
        if user.name in profile or user.output[0] in profile or not user.name:
            break
        if user.op_type in ("Add", "Sum") and len(event["inputs"]) <= 3:
            break
        fused.append(user.op_type)
        tensor = user.output[0]
    return "+".join(fused)


def match_profile(model: onnx.ModelProto, profile: Dict[str, dict]) -> Tuple[Dict[int, dict], Dict[str, float]]:
    """Match profiled nodes to the conv layers of `model` (index in `_conv_nodes` order).

    Returns ({conv index: {"name", "ms", "op", "fused"}}, {op type: ms} of everything else).
    """
    convs = _conv_nodes(model)
    shapes = _weight_shapes(model)
    keys = [_name_keys(model, c) for c in convs]
    candidates = []
    for pname, p in profile.items():
        if p["op"] not in ("Conv", OP_TYPE, "FusedConv", "NchwcConv"):
            continue
        pshape = p["inputs"][1] if len(p["inputs"]) > 1 else None
        for ci, c in enumerate(convs):
            if p["op"] == OP_TYPE and (c.op_type != OP_TYPE):
                continue
            if p["op"] != OP_TYPE and c.op_type == OP_TYPE:
                continue
            wshape = shapes.get(c.input[1]) if len(c.input) > 1 else None
            if pshape is not None and wshape is not None and list(pshape) != list(wshape):
                continue
            hit = keys[ci].get(pname)
            if hit is None and pname.endswith("_nchwc"):
                hit = keys[ci].get(pname[:-len("_nchwc")])
            if hit is not None:
                candidates.append((hit[0], ci, pname, _fused_ops(model, c, p, profile)))
    matched: Dict[int, dict] = {}
    used = set()
    for rank, ci, pname, fused in sorted(candidates, key=lambda t: (t[0], t[1])):
        if ci in matched or pname in used:
            continue
        matched[ci] = {"name": pname, "ms": profile[pname]["ms"], "op": profile[pname]["op"], "fused": fused}
        used.add(pname)
    other: Dict[str, float] = {}
    for pname, p in profile.items():
        if pname not in used:
            op = p["op"]
            if op in ("Conv", "FusedConv", "NchwcConv") or op == OP_TYPE:
                op = f"{op} (unmatched)"
            other[op] = other.get(op, 0.0) + p["ms"]
    return matched, other


def profile_pair(original: onnx.ModelProto, rewritten: onnx.ModelProto, feed: dict, threads: int,
                 runs: int, warmup: int = 2) -> dict:
    """Per-layer kernel times of both models from onnxruntime's profiler (separate sessions)."""
    with tempfile.TemporaryDirectory(prefix="haste-bench-") as tmp:
        sessions = [bench_session(m, threads, os.path.join(tmp, tag))
                    for tag, m in (("original", original), ("rewritten", rewritten))]
        for _ in range(warmup):
            for s in sessions:
                s.run(None, feed)
        for _ in range(runs):
            for s in sessions:
                s.run(None, feed)
        files = [s.end_profiling() for s in sessions]
        parsed = [parse_profile(f, runs) for f in files]
    return {"original": parsed[0], "rewritten": parsed[1]}


def haste_fused(node: onnx.NodeProto) -> str:
    """What a HasteConv absorbed (rewrite/fuse_activation.py), written like onnxruntime's fusions: "Add+Relu"."""
    parts = ["Add"] if len(node.input) > 4 and node.input[4] else []
    for a in node.attribute:
        if a.name == "activation" and a.s:
            parts.append(a.s.decode())
    return "+".join(parts)


def layer_table(original: onnx.ModelProto, rewritten: onnx.ModelProto, prof: dict, macs: dict) -> dict:
    """Per conv layer: original Conv time vs rewritten (HasteConv or kept Conv) time, and the other ops."""
    oconvs, rconvs = _conv_nodes(original), _conv_nodes(rewritten)
    if len(oconvs) != len(rconvs):  # pragma: no cover - the rewrite replaces nodes in place
        raise RuntimeError(f"{len(oconvs)} conv nodes in the original but {len(rconvs)} in the rewrite")
    om, oother = match_profile(original, prof["original"]["nodes"])
    rm, rother = match_profile(rewritten, prof["rewritten"]["nodes"])
    counters = {r["output"]: r for r in macs["layers"]}
    rows = []
    # Pair layers by node name (the rewrite keeps them; fusing a residual Add can move a HasteConv after the
    # shortcut Conv it now reads), by position for unnamed nodes.
    by_name = {r.name: j for j, r in enumerate(rconvs) if r.name}
    for i, o in enumerate(oconvs):
        j = by_name.get(o.name, i) if o.name else i
        r = rconvs[j]
        a, b = om.get(i), rm.get(j)
        c = counters.get(r.output[0]) if r.op_type == OP_TYPE else None
        rows.append({
            "node": r.name or o.name or r.output[0], "replaced": r.op_type == OP_TYPE,
            "rewritten_op": r.op_type, "original_ms": a["ms"] if a else None, "rewritten_ms": b["ms"] if b else None,
            "speedup": a["ms"] / b["ms"] if a and b and b["ms"] > 0 else None,
            "original_fused": a["fused"] if a else None,
            "rewritten_fused": haste_fused(r) if r.op_type == OP_TYPE else (b["fused"] if b else None),
            "original_profile_node": a["name"] if a else None, "rewritten_profile_node": b["name"] if b else None,
            "mac_cut": c["mac_reduction"] if c else None,
            "mac_cut_with_overheads": (1 - (c["haste_macs"] + c["overhead_ops"]) / c["dense_macs"]
                                       if c and c["dense_macs"] else None),
            "channel_ratio": c["channel_ratio"] if c else None,
        })

    def side(matched, other, parsed):
        conv = sum(m["ms"] for m in matched.values())
        total = sum(n["ms"] for n in parsed["nodes"].values())
        return {"kernel_ms": total, "conv_ms": conv, "other_ms": total - conv,
                "other_by_op": dict(sorted(other.items(), key=lambda kv: -kv[1])), "run_ms": parsed["run_ms"],
                "runs": parsed["runs"], "matched_layers": len(matched), "conv_share": conv / total if total else None}

    orig_side, rew_side = side(om, oother, prof["original"]), side(rm, rother, prof["rewritten"])
    replaced = [x for x in rows if x["replaced"]]
    ro = sum(x["original_ms"] or 0 for x in replaced)
    rr = sum(x["rewritten_ms"] or 0 for x in replaced)
    return {"layers": rows, "original": orig_side, "rewritten": rew_side,
            "replaced_original_ms": ro, "replaced_rewritten_ms": rr,
            "replaced_speedup": ro / rr if rr else None}
