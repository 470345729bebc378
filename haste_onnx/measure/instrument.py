"""Instrumented copies: every HasteConv's optional `stats` output made a graph output."""
from __future__ import annotations

from typing import List, Tuple

import onnx
from onnx import helper

from ..op.geometry import DOMAIN, OP_TYPE
from ..op.stats import STATS_SIZE


def add_stats_outputs(model: onnx.ModelProto) -> Tuple[onnx.ModelProto, List[Tuple[str, str]]]:
    """A copy of `model` whose main-graph HasteConv nodes have their `stats` output, as graph outputs.

    Returns the copy and [(node output 0, stats output name)] in node order.
    HasteConv nodes inside subgraphs are left alone (not measured).
    """
    from ..rewrite.graphs import all_names, unique_name

    work = onnx.ModelProto()
    work.CopyFrom(model)
    taken = all_names(work)
    pairs = []
    for node in work.graph.node:
        if node.domain != DOMAIN or node.op_type != OP_TYPE:
            continue
        if len(node.output) > 1 and node.output[1]:
            name = node.output[1]
        else:
            name = unique_name(f"{node.name or node.output[0]}.stats", taken)
            del node.output[1:]
            node.output.append(name)
        if not any(o.name == name for o in work.graph.output):
            work.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, [STATS_SIZE]))
        pairs.append((node.output[0], name))
    return work, pairs


def count_haste(model: onnx.ModelProto) -> Tuple[int, int]:
    """(HasteConv nodes in the main graph, HasteConv nodes in subgraphs)."""
    from ..rewrite.graphs import walk

    main = sum(1 for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE)
    total = sum(1 for _, n in walk(model.graph) if n.domain == DOMAIN and n.op_type == OP_TYPE)
    return main, total - main
