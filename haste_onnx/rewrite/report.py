"""The per-layer report of a rewrite or a strip: one row per Conv site, and the summary of them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional

from .analysis import ConvSite


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
