"""Rule: replace one 2-D float32 `Conv` by `haste::HasteConv`.

Pattern handled: a `Conv` node (domain "" or "ai.onnx"), in the main graph or
any subgraph, whose weight (and bias, if any) are static initializers (see
`normalize`), with a 4-D weight. The node is replaced in place (same position,
name, outputs and doc string) by a HasteConv with
- inputs `[X, W, B or "", hyperplanes]`;
- every attribute of the Conv, unchanged, plus `tile` (`--layer-tile` when a
  pattern matches the node's name, else `--tile`), `centering`,
  `magnitude_split` and `merge` (only when not the default), `seed` and `sparsity`;
- `hyperplanes` = `draw_hyperplanes(L, pH*pW, sparsity, seed)`, with L from
  `--layer-hyperplanes` when a pattern matches the node's name, else `--hyperplanes`, a new float32
  initializer of the node's graph named `<node name or output>.hyperplanes`
  (made unique), where `(pH, pW) = patch_size(kernel, strides, dilations,
  tile)` and `seed` = `--seed` + the node's index among all Conv and
  HasteConv nodes in the traversal order of `graphs.walk`;
- a float32 `value_info` for its output (shape from shape inference of the
  input model where known), unless the output is a graph output.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Optional, Set, Tuple

import onnx
from onnx import helper, numpy_helper

from ..op.geometry import DEFAULT_TILE, DOMAIN, MAX_HYPERPLANES, OP_TYPE, patch_size
from ..op.hyperplanes import draw_hyperplanes
from .analysis import ConvSite, site_names
from .graphs import Scope, replace_node, unique_name

DEFAULT_HYPERPLANES = 14
DEFAULT_SPARSITY = 0.6667
# Least-squares merging: better than the published mean at equal FLOPs (docs/ablations.md).
DEFAULT_MERGE = "project"


@dataclass(frozen=True)
class HashingOptions:
    """How hyperplanes are drawn and tiles are cut (the `hashing options` of the CLI)."""

    hyperplanes: int = DEFAULT_HYPERPLANES
    tile: Tuple[int, int] = DEFAULT_TILE
    sparsity: float = DEFAULT_SPARSITY
    seed: int = 0
    centering: bool = True
    magnitude_split: bool = False
    merge: str = DEFAULT_MERGE
    # (shell pattern, L) pairs: a layer whose name matches takes that L; the first match wins.
    layer_hyperplanes: Tuple[Tuple[str, int], ...] = ()
    # (shell pattern, (tile_h, tile_w)) pairs, likewise for the tile.
    layer_tiles: Tuple[Tuple[str, Tuple[int, int]], ...] = ()
    # Fuse a following residual Add and Relu/Clip into the HasteConv (rewrite/fuse_activation.py).
    fuse: bool = True

    def validate(self) -> None:
        if not 1 <= self.hyperplanes <= MAX_HYPERPLANES:
            raise ValueError(f"--hyperplanes must be between 1 and {MAX_HYPERPLANES}, got {self.hyperplanes}")
        for pattern, count in self.layer_hyperplanes:
            if not 1 <= count <= MAX_HYPERPLANES:
                raise ValueError(f"--layer-hyperplanes {pattern}={count}: L must be between 1 and {MAX_HYPERPLANES}")
        for pattern, tile in self.layer_tiles:
            if len(tile) != 2 or min(tile) < 1:
                raise ValueError(f"--layer-tile {pattern}: the tile must be positive, got {tile}")
        if len(self.tile) != 2 or min(self.tile) < 1:
            raise ValueError(f"--tile must be positive, got {'x'.join(map(str, self.tile))}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        if self.merge not in ("mean", "project"):
            raise ValueError(f"--merge must be mean or project, got {self.merge!r}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")

    def node_seed(self, site: ConvSite) -> int:
        return self.seed + site.index

    def hyperplanes_for(self, site: ConvSite) -> int:
        """L of this layer: the first `layer_hyperplanes` pattern matching one of its names, else `hyperplanes`."""
        return _first_match(site, self.layer_hyperplanes, self.hyperplanes)

    def tile_for(self, site: ConvSite) -> Tuple[int, int]:
        """The tile of this layer: the first `layer_tiles` pattern matching one of its names, else `tile`."""
        return tuple(_first_match(site, self.layer_tiles, self.tile))


def _first_match(site: ConvSite, pairs, default):
    names = site_names(site)
    for pattern, value in pairs:
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            return value
    return default


def hyperplanes_label(settings: dict) -> str:
    """'L=14', or 'L=14; L=10 for layer*' with per-layer overrides (summarised when many), from a settings
    dict (JSON form)."""
    text = f"L={settings['hyperplanes']}"
    overrides = settings.get("layer_hyperplanes") or ()
    if len(overrides) > 3:
        counts = [count for _, count in overrides]
        return f"L={min(counts)}..{max(counts)} for {len(overrides)} named layers, else {text}"
    for pattern, count in overrides:
        text += f"; L={count} for {pattern}"
    return text


def replace_conv(site: ConvSite, node: onnx.NodeProto, options: HashingOptions, taken: Set[str],
                 out_type: Optional[onnx.TypeProto]) -> dict:
    """Replace `node` (the current proto of `site`) by a HasteConv; returns the node's settings."""
    conv = site.conv
    tile = options.tile_for(site)
    ph, pw = patch_size(conv.kernel_shape, conv.strides, conv.dilations, tile)
    seed = options.node_seed(site)
    hyperplanes = options.hyperplanes_for(site)
    planes = draw_hyperplanes(hyperplanes, ph * pw, options.sparsity, seed)
    hp_name = unique_name(f"{node.name or node.output[0]}.hyperplanes", taken)
    site.scope.graph.initializer.append(numpy_helper.from_array(planes, hp_name))

    inputs = [node.input[0], node.input[1], node.input[2] if len(node.input) > 2 else "", hp_name]
    new = helper.make_node(OP_TYPE, inputs, list(node.output), name=node.name, domain=DOMAIN)
    if node.HasField("doc_string"):
        new.doc_string = node.doc_string
    new.attribute.extend(node.attribute)
    new.attribute.extend([
        helper.make_attribute("tile", list(tile)),
        helper.make_attribute("centering", int(options.centering)),
        helper.make_attribute("seed", seed),
        helper.make_attribute("sparsity", float(options.sparsity)),
    ])
    if options.magnitude_split:
        new.attribute.append(helper.make_attribute("magnitude_split", 1))
    if options.merge != "mean":
        new.attribute.append(helper.make_attribute("merge", options.merge))
    replace_node(site.scope.graph, node, new)
    write_value_info(site.scope, new.output[0], out_type)
    return {"hyperplanes": hyperplanes, "tile": list(tile), "patch": [ph, pw],
            "sparsity": float(options.sparsity), "seed": seed, "centering": bool(options.centering),
            "magnitude_split": bool(options.magnitude_split), "merge": options.merge}


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
