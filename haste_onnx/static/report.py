"""The static passes' per-layer table: channels and MACs of every Conv before and after, and why."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import onnx

from ..rewrite.analysis import collect


@dataclass
class StaticRow:
    node: str
    channels_in: str  # "64 -> 48"
    channels_out: str
    macs_before: int
    macs_after: int
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class StaticReport:
    rows: List[StaticRow]
    summary: dict = field(default_factory=dict)

    @property
    def macs_before(self) -> int:
        return sum(r.macs_before for r in self.rows)

    @property
    def macs_after(self) -> int:
        return sum(r.macs_after for r in self.rows)

    def summary_line(self) -> str:
        b, a = self.macs_before, self.macs_after
        cut = 100.0 * (1 - a / b) if b else 0.0
        changed = sum(1 for r in self.rows if r.macs_after != r.macs_before)
        return (f"{self.summary.get('method', 'static')}: {changed} of {len(self.rows)} Conv layer(s) narrower; "
                f"conv MACs {b / 1e6:.1f} M -> {a / 1e6:.1f} M per image ({cut:.1f}% cut)"
                + (f"; {self.summary['rule']}" if self.summary.get("rule") else ""))

    def to_json(self) -> dict:
        return {"static": {"layers": [r.to_json() for r in self.rows], "conv_macs_before": self.macs_before,
                           "conv_macs_after": self.macs_after, **self.summary}}

    def table(self) -> str:
        head = ("layer", "C_in", "C_out", "MACs (M)", "note")
        body = [(r.node, r.channels_in, r.channels_out, f"{r.macs_before / 1e6:.2f} -> {r.macs_after / 1e6:.2f}",
                 r.note) for r in self.rows]
        widths = [max(len(str(x[i])) for x in [head] + body) for i in range(4)]
        lines = ["  ".join(str(x[i]).ljust(widths[i]) for i in range(4)) + "  " + x[4] for x in [head] + body]
        return "\n".join(line.rstrip() for line in lines)


def layer_rows(before: onnx.ModelProto, after: onnx.ModelProto, spaces, why: Dict[int, str],
               notes: Dict[int, str]) -> List[StaticRow]:
    """One row per Conv of `before` (normalized), matched by name in `after`."""
    from .spaces import display_name

    space_of = {}
    for k, s in enumerate(spaces):
        for p in s.producers:
            space_of[display_name(s.scope, p)] = k
    after_sites = {s.name: s for s in collect(after) if s.op == "Conv"}
    rows = []
    for site in collect(before):
        if site.op != "Conv":
            continue
        new = after_sites.get(site.name)
        k = space_of.get(site.name)
        tied = spaces[k].producer_names() if k is not None and spaces[k].tied else []
        note = notes.get(k) or (why.get(k) if k is not None else "") or ""
        if tied and not why.get(k):
            note += f" (tied: {', '.join(n for n in tied if n != site.name)})"
        if not note and k is not None:
            note = "no redundant channel chosen"
        ci = lambda s: s.in_channels if s is not None else None  # noqa: E731
        co = lambda s: s.out_channels if s is not None else None  # noqa: E731
        rows.append(StaticRow(site.name, f"{ci(site)} -> {ci(new)}", f"{co(site)} -> {co(new)}",
                              int(site.macs or 0), int((new.macs if new is not None else 0) or 0), note))
    return rows
