"""Rule: replace one 2-D float32 `Conv` by `haste::HasteConv`.

Pattern handled: a `Conv` node (domain "" or "ai.onnx"), in the main graph or
any subgraph, whose weight (and bias, if any) are static initializers (see
`normalize`), with a 4-D weight. The node is replaced in place (same position,
name, outputs and doc string) by a HasteConv with
- inputs `[X, W, B or "", hyperplanes]`;
- every attribute of the Conv, unchanged, plus the layer's settings from the
  plan (`haste_onnx.plan.LayerSettings`): `tile`, `centering`,
  `magnitude_split` and `merge` (only when not the default), `seed` and `sparsity`;
- `hyperplanes` = `draw_hyperplanes(L, pH*pW, sparsity, seed)`, a new float32
  initializer of the node's graph named `<node name or output>.hyperplanes`
  (made unique), where `(pH, pW) = patch_size(kernel, strides, dilations,
  tile)`;
- a float32 `value_info` for its output (shape from shape inference of the
  input model where known), unless the output is a graph output.
"""
from __future__ import annotations

from typing import Optional, Set

import onnx
from onnx import helper, numpy_helper

from ..op.geometry import DOMAIN, OP_TYPE, patch_size
from ..op.hyperplanes import draw_hyperplanes
from ..plan.plan import LayerSettings
from .analysis import ConvSite
from .graphs import Scope, replace_node, unique_name


def replace_conv(site: ConvSite, node: onnx.NodeProto, settings: LayerSettings, taken: Set[str],
                 out_type: Optional[onnx.TypeProto]) -> dict:
    """Replace `node` (the current proto of `site`) by a HasteConv; returns the node's settings."""
    conv = site.conv
    tile = tuple(settings.tile)
    ph, pw = patch_size(conv.kernel_shape, conv.strides, conv.dilations, tile)
    seed = settings.seed
    hyperplanes = settings.hyperplanes
    planes = draw_hyperplanes(hyperplanes, ph * pw, settings.sparsity, seed)
    hp_name = unique_name(f"{node.name or node.output[0]}.hyperplanes", taken)
    site.scope.graph.initializer.append(numpy_helper.from_array(planes, hp_name))

    inputs = [node.input[0], node.input[1], node.input[2] if len(node.input) > 2 else "", hp_name]
    new = helper.make_node(OP_TYPE, inputs, list(node.output), name=node.name, domain=DOMAIN)
    if node.HasField("doc_string"):
        new.doc_string = node.doc_string
    new.attribute.extend(node.attribute)
    new.attribute.extend([
        helper.make_attribute("tile", list(tile)),
        helper.make_attribute("centering", int(settings.centering)),
        helper.make_attribute("seed", seed),
        helper.make_attribute("sparsity", float(settings.sparsity)),
    ])
    if settings.magnitude_split:
        new.attribute.append(helper.make_attribute("magnitude_split", 1))
    if settings.merge != "mean":
        new.attribute.append(helper.make_attribute("merge", settings.merge))
    replace_node(site.scope.graph, node, new)
    write_value_info(site.scope, new.output[0], out_type)
    return {"hyperplanes": hyperplanes, "tile": list(tile), "patch": [ph, pw],
            "sparsity": float(settings.sparsity), "seed": seed, "centering": bool(settings.centering),
            "magnitude_split": bool(settings.magnitude_split), "merge": settings.merge}


def write_value_info(scope: Scope, name: str, out_type: Optional[onnx.TypeProto]) -> None:
    """A float32 value_info for `name` (kept shape where known), unless it is a graph output."""
    graph = scope.graph
    if any(o.name == name for o in graph.output):
        return
    t = onnx.TypeProto()
    if out_type is not None and out_type.HasField("tensor_type"):
        t.CopyFrom(out_type)
    else:
        for _ in range(4):
            t.tensor_type.shape.dim.add()
    t.tensor_type.elem_type = onnx.TensorProto.FLOAT
    for vi in graph.value_info:
        if vi.name == name:
            vi.type.CopyFrom(t)
            return
    vi = graph.value_info.add()
    vi.name = name
    vi.type.CopyFrom(t)
