"""docs/tradeoff.svg: the accuracy / conv-MAC trade-off drawn by hand (no plotting library), from render.py's rows."""
import math
from typing import List


def tradeoff_svg(r18: List[dict], r20: List[dict], r18s: List[dict], r18a: List[dict] = ()) -> str:
    W, H, ml, mr, mt, mb = 760, 420, 60, 230, 20, 45
    floor = -8.0  # points below are drawn on the bottom edge with their value written beside them
    budget = sorted([r for r in r18a if r["point"].get("budget") and not r["point"].get("probe_images")
                     and not r["point"].get("candidate_tiles") and not r["point"].get("budget_draws")
                     and not r["point"].get("allow_strided")],
                    key=lambda r: r["conv_mac_reduction_with_overheads"]["mean"])
    one_draw = [r for r in r18a if r["point"].get("budget_draws") and not r["point"].get("candidate_tiles")]
    others = [r for r in r18a if r not in budget and r not in one_draw]  # the one-draw rows: in the table only
    series = [("ResNet-18", "#1f77b4", r18), ("ResNet-20", "#d62728", r20), ("ResNet-18 + magnitude split (1 seed)", "#2ca02c", r18s),
              ("ResNet-18 beyond the paper (issue #8)", "#9467bd", others),
              ("ResNet-18, the defaults (probe budget L)", "#ff7f0e", budget)]
    pts = [(100 * r["conv_mac_reduction"]["mean"], 100 * r["difference"]["min"], 100 * r["difference"]["max"])
           for _, _, rs in series for r in rs]
    pts += [(100 * r["conv_mac_reduction_with_overheads"]["mean"], 100 * r["difference"]["mean"], 0) for _, _, rs in series for r in rs]
    xmax = max(10.0, math.ceil(max(p[0] for p in pts) / 10) * 10)
    ymin = max(floor, min(-1.0, math.floor(min(min(p[1], p[2]) for p in pts))))
    ymax = 0.5
    X = lambda x: ml + (W - ml - mr) * x / xmax  # noqa: E731
    Y = lambda y: mt + (H - mt - mb) * (ymax - max(y, ymin)) / (ymax - ymin)  # noqa: E731
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>']
    ystep = 1 if ymax - ymin <= 8 else (2 if ymax - ymin <= 16 else 5)
    y = 0.0
    while y >= ymin:
        s.append(f'<line x1="{ml}" x2="{W - mr}" y1="{Y(y):.1f}" y2="{Y(y):.1f}" stroke="#ddd"/>'
                 f'<text x="{ml - 5}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        y -= ystep
    for x in range(0, int(xmax) + 1, 10):
        s.append(f'<line x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{mt}" y2="{H - mb}" stroke="#eee"/>'
                 f'<text x="{X(x):.1f}" y="{H - mb + 15}" text-anchor="middle">{x}%</text>')
    s.append(f'<line x1="{ml}" x2="{W - mr}" y1="{Y(-1.25):.1f}" y2="{Y(-1.25):.1f}" stroke="#999" stroke-dasharray="4 3"/>'
             f'<text x="{W - mr - 2}" y="{Y(-1.25) - 3:.1f}" text-anchor="end" fill="#777">-1.25 pt</text>')
    s.append(f'<text x="{(ml + W - mr) / 2}" y="{H - 8}" text-anchor="middle">all conv MACs cut (filled: with overheads, hollow: without)</text>')
    s.append(f'<text transform="translate(14,{(mt + H - mb) / 2}) rotate(-90)" text-anchor="middle">top-1 difference (pt)</text>')
    for i, (name, color, rs) in enumerate(series):
        if not rs:
            continue
        curve = rs is budget or rs[0]["group"] != "ablation"  # a curve over L; other settings are separate points
        beyond = rs is others
        rs = rs if rs is budget else sorted(rs, key=lambda r: r["point"]["L"])
        if curve:
            line = " ".join(f"{X(100 * r['conv_mac_reduction_with_overheads']['mean']):.1f},{Y(100 * r['difference']['mean']):.1f}" for r in rs)
            s.append(f'<polyline points="{line}" fill="none" stroke="{color}"/>')
        for r in rs:
            xo, xw = 100 * r["conv_mac_reduction_with_overheads"]["mean"], 100 * r["conv_mac_reduction"]["mean"]
            d = r["difference"]
            yc = 100 * d["mean"]
            s.append(f'<line x1="{X(xo):.1f}" x2="{X(xo):.1f}" y1="{Y(100 * d["min"]):.1f}" y2="{Y(100 * d["max"]):.1f}" stroke="{color}"/>')
            s.append(f'<circle cx="{X(xo):.1f}" cy="{Y(yc):.1f}" r="3.5" fill="{color}"/>')
            s.append(f'<circle cx="{X(xw):.1f}" cy="{Y(yc):.1f}" r="3.5" fill="none" stroke="{color}"/>')
            off = f" ({yc:.1f} pt, off scale)" if yc < ymin else ""
            label = (r["tag"].replace("_project", " project") if beyond else
                     f'L{r["point"].get("budget") or r["point"]["L"]}')
            s.append(f'<text x="{X(xo) + 5:.1f}" y="{Y(yc) - 5:.1f}" fill="{color}" font-size="9">{label}{off}</text>')
        ly = mt + 15 + 18 * i
        s.append(f'<circle cx="{W - mr + 12}" cy="{ly - 4}" r="4" fill="{color}"/>'
                 f'<text x="{W - mr + 20}" y="{ly}" font-size="10">{name}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


