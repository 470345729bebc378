"""Plain-text tables shared by the commands."""
from __future__ import annotations

from typing import Optional, Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence], right: Sequence[int] = ()) -> str:
    """A plain-text table; columns in `right` are right-aligned."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def dims(d: Optional[list]) -> str:
    from ..rewrite.analysis import format_dims

    return format_dims(d)


def macs(m: Optional[int]) -> str:
    return "?" if m is None else f"{m:,}"


def layers_table(layers) -> str:
    """The per-layer table of rewrite and strip: node, input shape, kernel, stride, MACs, result."""
    rows = [(r.node, dims(r.input_shape), dims(r.kernel), dims(r.stride), macs(r.macs), r.outcome())
            for r in layers]
    return format_table(["node", "input shape", "kernel", "stride", "MACs", "result"], rows, right=(4,))


def levels_table(info: dict) -> str:
    """The levels a steerable model offers (its `haste_levels` metadata): what each replaces, and the default."""
    rows = []
    offered = [entry["level"] for entry in info["levels"]]
    for i, entry in enumerate(info["levels"]):
        span = f"[{offered[i]:g}, {offered[i + 1]:g})" if i + 1 < len(offered) else f"[{offered[i]:g}, 1]"
        counts = [layer["hyperplanes"] for layer in entry["layers"].values()]
        tiles = sorted({"x".join(map(str, layer["tile"])) for layer in entry["layers"].values()})
        spread = ("original Convs" if not counts else
                  (f"L={min(counts)}" if min(counts) == max(counts) else f"L={min(counts)}..{max(counts)}")
                  + f", tile {'/'.join(tiles)}")
        cut = entry.get("estimated_cut")
        rows.append((f"{entry['level']:g}", span, entry["replaced"], spread,
                     "" if cut is None else f"{100 * cut:.1f}%"))
    default = info["default"]
    return (format_table(["level", "runs for haste_level in", "layers replaced", "settings", "cut on the probe"], rows,
                         right=(2, 4))
            + f"\n{info['input']}: float32 scalar in [0, 1], a level runs the largest offered level at most it; "
              f"default {default:g} when not fed")
