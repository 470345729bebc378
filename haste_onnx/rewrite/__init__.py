"""Model rewrites: Conv -> HasteConv and back.

One rule per module, applied by `rewrite_model` and `strip_model`:
- `normalize`: static weights (Constant, ConstantOfShape -> initializers) and
  BatchNormalization folding;
- `conv_to_haste`: the replacement itself;
- `strip`: HasteConv -> Conv;
- `versions`: IR version and opset imports;
- `haste_onnx.policy`: which layers are replaced.
`analysis` and `graphs` are the shared read-only views and edit helpers.

Both functions work on a copy: the model passed in is never modified.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import onnx

from ..model_io import ModelRejected
from ..policy import Policy
from .analysis import ConvSite, collect, format_dims  # noqa: F401  (format_dims: for the tables)
from .conv_to_haste import HashingOptions, replace_conv
from .fuse_activation import fuse_activations
from .graphs import TypeTable, all_names
from .normalize import StaticTensor, fold_batchnorm, materialize, resolve_static
from .strip import strip_haste
from .versions import check_opset, finalize

__all__ = ["HashingOptions", "Policy", "LayerRow", "RewriteReport", "rewrite_model", "strip_model", "layer_row"]


@dataclass
class LayerRow:
    """One line of the per-layer table."""

    node: str
    op: str
    input_shape: Optional[list]
    kernel: Optional[list]
    stride: Optional[list]
    group: int
    in_channels: Optional[int]
    out_channels: Optional[int]
    macs: Optional[int]
    status: str  # "replaced", "kept" or "HasteConv" (already one), "stripped"
    reason: Optional[str] = None
    settings: Optional[dict] = None
    note: Optional[str] = None

    def to_json(self) -> dict:
        return asdict(self)

    def outcome(self) -> str:
        text = self.status if self.reason is None else f"{self.status}: {self.reason}"
        return f"{text} ({self.note})" if self.note else text


@dataclass
class RewriteReport:
    layers: List[LayerRow] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for r in self.layers if r.status == status)

    def summary(self) -> dict:
        known = [r.macs for r in self.layers if r.macs is not None]
        haste = [r.macs for r in self.layers if r.macs is not None and r.status in ("replaced", "HasteConv")]
        total = sum(known)
        return {
            "layers": len(self.layers),
            "replaced": self.count("replaced"),
            "kept": self.count("kept"),
            "already_haste": self.count("HasteConv"),
            "stripped": self.count("stripped"),
            "conv_macs": total,
            "haste_macs": sum(haste),
            "haste_mac_fraction": (sum(haste) / total) if total else None,
            "layers_with_unknown_macs": len(self.layers) - len(known),
        }

    def summary_line(self) -> str:
        s = self.summary()
        if s["stripped"]:
            return f"stripped {s['stripped']} HasteConv layer(s) back to Conv"
        line = (f"replaced {s['replaced']} of {s['layers']} conv layers ({s['kept']} kept dense, "
                f"{s['already_haste']} already HasteConv)")
        if s["conv_macs"]:
            line += (f"; {100 * s['haste_mac_fraction']:.1f}% of {s['conv_macs'] / 1e6:.2f} M conv MACs per image "
                     "now in HasteConv")
        if s["layers_with_unknown_macs"]:
            line += f" ({s['layers_with_unknown_macs']} layer(s) of unknown size not counted)"
        return line

    def to_json(self) -> dict:
        return {"settings": self.settings, "layers": [r.to_json() for r in self.layers], "summary": self.summary()}


def layer_row(site: ConvSite, status: str, reason: Optional[str] = None, settings: Optional[dict] = None,
              note: Optional[str] = None) -> LayerRow:
    return LayerRow(site.name, site.op, site.input_shape, site.kernel, site.strides if site.kernel else None,
                    site.group, site.in_channels, site.out_channels, site.macs, status, reason, settings, note)


def haste_settings(site: ConvSite) -> dict:
    """The HasteConv settings of an existing HasteConv node."""
    from .graphs import find_initializer

    a = site.attrs
    settings = {"tile": list(a.get("tile", [4, 4])), "centering": bool(a.get("centering", 1)),
                "magnitude_split": bool(a.get("magnitude_split", 0)),
                "merge": (a.get("merge", b"mean").decode() if isinstance(a.get("merge", "mean"), bytes)
                          else a.get("merge", "mean")),
                "seed": a.get("seed"),
                "sparsity": None if a.get("sparsity") is None else float(f"{a['sparsity']:.6g}"), "hyperplanes": None, "patch": None}
    if len(site.node.input) > 3 and site.node.input[3]:
        _, init = find_initializer(site.scope, site.node.input[3])
        if init is not None and len(init.dims) == 2:
            settings["hyperplanes"] = int(init.dims[0])
    if site.conv is not None:
        from ..op.geometry import patch_size

        c = site.conv
        settings["patch"] = list(patch_size(c.kernel_shape, c.strides, c.dilations, settings["tile"]))
    return settings


def rewrite_model(model: onnx.ModelProto, options: HashingOptions = HashingOptions(),
                  policy: Policy = Policy()) -> Tuple[onnx.ModelProto, RewriteReport]:
    """A copy of `model` with every eligible Conv replaced by HasteConv, and the per-layer report.

    Raises ModelRejected for a model without Conv, an opset below 7, or when no
    Conv is eligible and the model has no HasteConv yet (nothing to do).
    """
    options.validate()
    work = onnx.ModelProto()
    work.CopyFrom(model)
    check_opset(work)
    types = TypeTable.infer(work)
    sites = collect(work, types)
    report = RewriteReport(settings={"hyperplanes": options.hyperplanes, "tile": list(options.tile),
                                     "sparsity": options.sparsity, "seed": options.seed,
                                     "centering": options.centering,
                                     "magnitude_split": options.magnitude_split, "merge": options.merge,
                                     "layer_hyperplanes": [list(p) for p in options.layer_hyperplanes],
                                     "layer_tiles": [[p, list(t)] for p, t in options.layer_tiles],
                                     "fuse": options.fuse,
                                     "policy": asdict(policy)})
    if not sites:
        raise ModelRejected("the model has no Conv node")
    taken = all_names(work)
    for site in sites:
        if site.op != "Conv":
            report.layers.append(layer_row(site, "HasteConv", settings=haste_settings(site)))
            continue
        reason = policy.decide(site)
        if reason is not None:
            report.layers.append(layer_row(site, "kept", reason))
            continue
        node = site.node
        weight = _materialize(work, site, 1)
        bias = _materialize(work, site, 2)
        folded, note = fold_batchnorm(work, site.scope, node, weight, bias, taken)
        settings = replace_conv(site, node, options, taken, types.types.get(node.output[0]))
        report.layers.append(layer_row(site, "replaced", settings=settings, note=note or None))
    if not report.count("replaced") and not report.count("HasteConv"):
        raise RejectedWithReport("no Conv is eligible for HasteConv; nothing to do", report)
    if options.fuse:
        fused = dict(fuse_activations(work, types))
        for row in report.layers:
            if row.status == "replaced" and row.node in fused and row.settings is not None:
                row.settings["fused"] = fused[row.node]
    finalize(work, added_initializers=report.count("replaced") > 0)
    return work, report


class RejectedWithReport(ModelRejected):
    """Nothing to do; the per-layer report says why for each layer."""

    def __init__(self, message: str, report: RewriteReport):
        super().__init__(message)
        self.report = report


def _materialize(model: onnx.ModelProto, site: ConvSite, index: int) -> Optional[StaticTensor]:
    node = site.node
    if len(node.input) <= index or not node.input[index]:
        return None
    tensor = resolve_static(site.scope, node.input[index])  # again: earlier edits may have moved it
    assert isinstance(tensor, StaticTensor), tensor
    materialize(model, tensor)
    return tensor


def strip_model(model: onnx.ModelProto) -> Tuple[onnx.ModelProto, RewriteReport]:
    """A copy of `model` with every HasteConv turned back into Conv; ModelRejected when there is none."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    sites = [s for s in collect(work) if s.op != "Conv"]
    if not sites:
        raise ModelRejected("the model has no HasteConv node; nothing to strip")
    report = RewriteReport()
    for site in sites:
        report.layers.append(layer_row(site, "stripped", settings=haste_settings(site)))
    strip_haste(work)
    finalize(work, added_initializers=False)
    return work, report
