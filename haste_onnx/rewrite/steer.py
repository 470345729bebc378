"""Rule: one steerable model from the original and one plan per level (docs/steerable.md).

Patterns handled: any model `rewrite_model` accepts, with plans for levels
0 = l_0 < l_1 < ... <= 1 (level 0: the empty plan, the original). The result:
- the main graph keeps the original's inputs (those that are not weights),
  plus the float32 scalar input `haste_level` whose initializer of the same
  name holds the default level (ONNX: an initializer with an input's name is
  the input's default, so the input may be left out);
- `haste::HasteLevel(haste_level)` -> the index of the largest offered level
  at most the value (an error for NaN or outside [0, 1]); `Equal` per level;
- a chain of `If` nodes whose branch i is the whole model rewritten with
  plan i (branch 0: the original graph, unchanged), each branch holding the
  initializers it reads, so that onnxruntime optimises every branch's Convs
  as in a model of its own (its NCHWc layout only takes a Conv whose weights
  are initializers of the Conv's own graph). The last If writes the
  original's output names.
In memory the weights are then held by every branch; on disk they are
stored once: `model_io.save_model(..., deduplicate=True)` writes each
distinct tensor once into the external data file and points every copy at
it. Consecutive levels with the same plan share one branch (the first such
level is the one offered). The levels, what each replaces and the default
are stored in metadata_props under `haste_levels` (JSON); `select_level`
gives one level back as a model of its own (level 0: the original), which is
what `strip` returns.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelRejected
from ..op.geometry import DOMAIN, OPSET_VERSION
from ..op.level import LEVEL_INPUT, LEVEL_OP, check_levels, level_problem
from ..plan import Plan
from .graphs import all_names, subgraphs, unique_name

METADATA_KEY = "haste_levels"


def steer_model(original: onnx.ModelProto, levels: Sequence[Tuple[float, Plan]],
                default_level: float = 1.0) -> Tuple[onnx.ModelProto, list]:
    """The steerable model and the rewrite report of each offered level above 0. `levels`: (level, plan) for
    the levels above 0, ascending; level 0 (the original) is always offered."""
    from . import rewrite_model

    if is_steerable(original):
        raise ModelRejected("the model is steerable already; strip it first (haste-onnx strip)")
    problem = level_problem(default_level)
    if problem:
        raise ValueError(problem.replace(LEVEL_INPUT, "the default level"))
    check_levels([0.0] + [level for level, _ in levels])
    offered: List[Tuple[float, Optional[Plan]]] = [(0.0, None)]
    for level, plan in levels:
        if not _same_choice(plan, offered[-1][1]):
            offered.append((level, plan))
    if len(offered) < 2:
        raise ModelRejected("every level's plan replaces nothing: no level differs from the original")
    models, reports = [original], []
    for _, plan in offered[1:]:
        rewritten, report = rewrite_model(original, plan)
        models.append(rewritten)
        reports.append(report)

    steer = onnx.ModelProto()
    steer.CopyFrom(original)
    main = steer.graph
    weights = {i.name for i in original.graph.initializer}
    inputs = [i for i in main.input if i.name not in weights]  # weights listed as inputs (IR < 4) go too
    for field in (main.node, main.value_info, main.initializer, main.input):
        del field[:]  # the original's nodes, tensors and weights now live in branch 0
    main.input.extend(inputs)
    taken = set().union(*(all_names(m) for m in models))
    outputs = [o.name for o in original.graph.output]
    branches = [_branch(m.graph, outputs, f"level{i}", taken) for i, m in enumerate(models)]

    level_init = numpy_helper.from_array(np.array(default_level, np.float32), LEVEL_INPUT)
    if LEVEL_INPUT in taken:
        raise ModelRejected(f"the model already has a tensor named {LEVEL_INPUT!r}")
    main.input.append(helper.make_tensor_value_info(LEVEL_INPUT, onnx.TensorProto.FLOAT, []))
    main.initializer.append(level_init)
    index = unique_name(f"{LEVEL_INPUT}/index", taken)
    main.node.append(helper.make_node(LEVEL_OP, [LEVEL_INPUT], [index], name=unique_name(f"{LEVEL_INPUT}/{LEVEL_OP}",
                                                                                           taken),
                                      domain=DOMAIN, levels=[float(level) for level, _ in offered]))
    conditions = []
    for i in range(len(branches) - 1):
        constant = unique_name(f"{LEVEL_INPUT}/{i}", taken)
        main.initializer.append(numpy_helper.from_array(np.array(i, np.int64), constant))
        conditions.append(unique_name(f"{LEVEL_INPUT}/is_{i}", taken))
        main.node.append(helper.make_node("Equal", [index, constant], [conditions[-1]],
                                          name=unique_name(f"{LEVEL_INPUT}/Equal_{i}", taken)))
    main.node.append(_chain(branches, conditions, original.graph.output, outputs, 0, taken))

    del steer.opset_import[:]
    versions: Dict[str, int] = {}
    for m in models:
        for op in m.opset_import:
            versions[op.domain] = max(versions.get(op.domain, 0), op.version)
    versions.setdefault(DOMAIN, OPSET_VERSION)
    steer.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())
    steer.ir_version = max(m.ir_version for m in models)
    doc = {"input": LEVEL_INPUT, "default": float(default_level), "outputs": outputs,
           "levels": [_level_json(level, plan) for level, plan in offered]}
    steer.metadata_props.add(key=METADATA_KEY, value=json.dumps(doc, separators=(",", ":")))
    return steer, reports


def is_steerable(model: onnx.ModelProto) -> bool:
    return any(p.key == METADATA_KEY for p in model.metadata_props)


def level_info(model: onnx.ModelProto) -> Optional[dict]:
    """The `haste_levels` metadata of a steerable model (None for any other model)."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None


def select_level(model: onnx.ModelProto, level: float) -> onnx.ModelProto:
    """The branch that runs at `level`, as a plain model (level 0: the original); ValueError for a bad level."""
    from ..op.level import choose_level

    info = level_info(model)
    if info is None:
        raise ModelRejected("the model is not steerable (made by rewrite --steerable)")
    chosen = choose_level(level, [entry["level"] for entry in info["levels"]])
    branch = _find_branch(model.graph, chosen, len(info["levels"]))
    plain = onnx.ModelProto()
    plain.CopyFrom(model)
    main = plain.graph
    del main.node[:]
    main.node.extend(branch.node)
    del main.value_info[:]
    main.value_info.extend(branch.value_info)
    del main.initializer[:]
    main.initializer.extend(branch.initializer)
    inputs = [i for i in main.input if i.name != LEVEL_INPUT]
    del main.input[:]
    main.input.extend(inputs)
    for out, inner in zip(info["outputs"], branch.output):
        _rename(main, inner.name, out)
    for i in reversed(range(len(plain.metadata_props))):
        if plain.metadata_props[i].key == METADATA_KEY:
            del plain.metadata_props[i]
    if chosen == 0:
        for i in reversed([i for i, op in enumerate(plain.opset_import) if op.domain == DOMAIN]):
            del plain.opset_import[i]
    return plain


def _find_branch(graph: onnx.GraphProto, index: int, count: int) -> onnx.GraphProto:
    """Branch `index` of the If chain of `count` branches: the then-branch `index` Ifs down the chain, or the
    last If's else-branch for the last one."""
    node = next(n for n in graph.node if n.op_type == "If")
    for _ in range(min(index, count - 2)):
        node = next(n for n in _attr(node, "else_branch").node if n.op_type == "If")
    return _attr(node, "else_branch" if index == count - 1 else "then_branch")


def _attr(node: onnx.NodeProto, name: str) -> onnx.GraphProto:
    return next(a.g for a in node.attribute if a.name == name)


def _same_choice(plan: Optional[Plan], other: Optional[Plan]) -> bool:
    def key(p: Optional[Plan]):
        return tuple((layer.site, None if layer.settings is None else
                      (layer.settings.hyperplanes, tuple(layer.settings.tile)))
                     for layer in (p.layers if p is not None else []) if layer.settings is not None)
    return key(plan) == key(other)


def _level_json(level: float, plan: Optional[Plan]) -> dict:
    if plan is None:
        return {"level": 0.0, "replaced": 0, "layers": {}}
    doc = {"level": float(level), "replaced": len(plan.replaced()),
           "layers": {layer.site: {"hyperplanes": layer.settings.hyperplanes, "tile": list(layer.settings.tile)}
                      for layer in plan.replaced()}}
    probe = plan.origin.get("probe") if isinstance(plan.origin, dict) else None
    if isinstance(probe, dict) and probe.get("estimated_cut") is not None:
        doc["estimated_cut"] = probe["estimated_cut"]
    return doc


def _branch(graph: onnx.GraphProto, outputs: List[str], label: str, taken: set) -> onnx.GraphProto:
    """`graph` as an If branch: no inputs (the main graph's are outer scope; inputs that name initializers,
    IR < 4, are just those initializers here), its initializers its own, its output names its own."""
    branch = onnx.GraphProto()
    branch.CopyFrom(graph)
    branch.name = f"{graph.name or 'graph'}/{label}"
    del branch.input[:]
    for name in outputs:
        _rename(branch, name, unique_name(f"{name}/{label}", taken))
    return branch


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every use of tensor `old` in `graph` (and reads in its subgraphs) now names `new`."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for _, sub in subgraphs(node):
            _rename(sub, old, new)
    for value in list(graph.value_info) + list(graph.output):
        if value.name == old:
            value.name = new


def _chain(branches: List[onnx.GraphProto], conditions: List[str], output_types, names: List[str], k: int,
           taken: set) -> onnx.NodeProto:
    """If(condition k) then branch k else (the chain from k+1, or the last branch), writing `names`."""
    if k == len(branches) - 2:
        otherwise = branches[-1]
    else:
        inner = [unique_name(f"{name}/levels{k + 1}+", taken) for name in names]
        otherwise = helper.make_graph([_chain(branches, conditions, output_types, inner, k + 1, taken)],
                                      f"levels{k + 1}+", [], [_typed(v, n) for v, n in zip(output_types, inner)])
    return helper.make_node("If", [conditions[k]], names, name=unique_name(f"{LEVEL_INPUT}/If_{k}", taken),
                            then_branch=branches[k], else_branch=otherwise)


def _typed(value: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    typed = onnx.ValueInfoProto()
    typed.CopyFrom(value)
    typed.name = name
    return typed
