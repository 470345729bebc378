"""`static_compress(model, options)`: a RED or QSFM pass over a copy of the model, and its report."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import onnx

from .costs import channel_cost, conv_macs
from .normalize import normalize
from .report import StaticReport, layer_rows
from .spaces import GraphIndex, display_name, find_spaces
from .surgery import apply_edits

METHODS = ("red", "qsfm")


@dataclass(frozen=True)
class StaticOptions:
    method: str = "qsfm"
    red_resolution: float = 0.1  # RED: hashing bandwidth, times a Silverman bandwidth (0: no hashing)
    red_threshold: float = 0.0  # RED: merge neurons within this relative distance (0: identical only)
    cut: Optional[float] = None  # QSFM: share of conv MACs to remove; None: the fidelity target decides
    min_agreement: float = 0.99  # QSFM without a cut: the fidelity target on the probe images
    max_error: float = 0.10
    tied: bool = False  # also change channels tied by residual Adds
    min_keep: float = 0.25  # QSFM: no layer below this share of its channels
    compensate: str = "pair"  # QSFM: "pair" (its partner, as published) or "lstsq" (all kept channels)

    def to_json(self) -> dict:
        return asdict(self)


def _eligible(spaces, tied: bool) -> Tuple[List[int], Dict[int, str]]:
    ok, why = [], {}
    for k, s in enumerate(spaces):
        if s.fixed:
            why[k] = s.fixed
        elif s.tied and not tied:
            why[k] = f"tied by {', '.join(s.joined_by[:3])}{' ...' if len(s.joined_by) > 3 else ''} " \
                     f"with {len(s.producers) - 1} other Conv(s): left alone (--static-tied changes them)"
        elif not s.consumers:
            why[k] = "no Conv or Gemm reads it"
        elif len(s.read_tensors()) != 1 and not tied:
            why[k] = "its readers read it at different points"
        else:
            ok.append(k)
    return ok, why


def static_compress(model: onnx.ModelProto, options: StaticOptions, images: Optional[np.ndarray] = None,
                    threads: Optional[int] = None, progress: Optional[Callable[[str], None]] = None,
                    cache: Optional[dict] = None,
                    check_images: Optional[np.ndarray] = None) -> Tuple[onnx.ModelProto, StaticReport]:
    """A plain, smaller copy of `model` and the per-layer report; `images` feed QSFM (probe or calibration),
    `check_images` (default `images`) are those its fidelity target is checked on.
    `cache` (a dict kept by the caller for one model and one set of images) keeps QSFM's order between calls
    that differ only in the cut or the fidelity target."""
    if options.method not in METHODS:
        raise ValueError(f"unknown static method {options.method!r}")
    work = onnx.ModelProto()
    work.CopyFrom(model)
    notes = normalize(work)
    before = onnx.ModelProto()
    before.CopyFrom(work)
    spaces = find_spaces(work)
    eligible, why = _eligible(spaces, options.tied)
    macs = conv_macs(work)
    names = {}
    for s in spaces:
        for n in s.scope.graph.node:
            names[id(n)] = display_name(s.scope, n)
    summary: Dict[str, object] = {"method": options.method, "options": options.to_json(),
                                  "batchnorm_folded": len(notes)}
    notes_by_space: Dict[int, str] = {}
    if options.method == "red":
        edits = _red(work, spaces, eligible, options, notes_by_space)
    else:
        if images is None:
            raise ValueError("QSFM needs probe images")
        edits = _qsfm(work, spaces, eligible, options, images, threads, macs, names, notes_by_space, summary,
                      progress, cache, check_images)
    apply_edits(work, spaces, edits)
    report = StaticReport(layer_rows(before, work, spaces, why, notes_by_space), summary)
    record(work, report)
    return work, report


METADATA_KEY = "haste_onnx.static"


def record(model: onnx.ModelProto, report: StaticReport) -> None:
    """The static step in the model's metadata (`info` shows it): method, options, MACs, channels before."""
    import json

    doc = {"method": report.summary.get("method"), "options": report.summary.get("options"),
           "conv_macs_before": report.macs_before, "conv_macs_after": report.macs_after,
           "layers": {r.node: {"channels_in": r.channels_in, "channels_out": r.channels_out,
                               "macs_before": r.macs_before} for r in report.rows}}
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(doc, separators=(",", ":")))


def _red(work, spaces, eligible, options, notes) -> dict:
    from ..rewrite.graphs import TypeTable
    from .red import hash_weights, red_edit
    from .surgery import Editor

    types = TypeTable.infer(work)
    editor = Editor(work)
    weights = {}
    for s in spaces:
        index = GraphIndex(s.scope, types)
        for p in s.producers:
            if len(p.input) < 2 or index.static(p.input[1]) is None:
                continue
            w = index.static(p.input[1])
            b = index.static(p.input[2]) if len(p.input) > 2 and p.input[2] else None
            if options.red_resolution > 0 and w.dtype == np.float32:
                w = hash_weights(w, options.red_resolution)
                editor.set(index, p, 1, w)
            weights[p.output[0]] = (w, b)
    editor.finish()
    edits = {}
    for k in eligible:
        edit, merged = red_edit(spaces[k], weights, options.red_threshold)
        if edit is not None:
            edits[k] = edit
            notes[k] = f"RED merged {merged} neuron(s)"
    return edits


def _qsfm(work, spaces, eligible, options, images, threads, macs, names, notes, summary, progress,
          cache=None, check_images=None) -> dict:
    from .qsfm import edits_for as pair_edits
    from .qsfm import gram_matrices, greedy_order, greedy_order_lstsq, lstsq_edits, prefix_for_cut, search_prefix

    key = (options.tied, options.min_keep, len(images), options.compensate)
    grams = None
    if cache is not None and key in cache:
        steps, grams = cache[key]
    else:
        if progress:
            progress(f"qsfm: feature maps of {len(eligible)} layer(s) on {len(images)} image(s)")
        grams = gram_matrices(work, spaces, eligible, images, threads=threads)
        costs = {k: channel_cost(spaces[k], macs, names) for k in eligible}
        order = greedy_order_lstsq if options.compensate == "lstsq" else greedy_order
        steps = order(grams, costs, options.min_keep)
        if cache is not None:
            cache[key] = (steps, grams)

    def edits_for(chosen, spaces):
        return lstsq_edits(chosen, spaces, grams) if options.compensate == "lstsq" else pair_edits(chosen, spaces)
    total = float(sum(macs.values()))
    if options.cut is not None:
        n = prefix_for_cut(steps, total, options.cut)
        summary["rule"] = f"target cut {100 * options.cut:.1f}% of conv MACs"
    else:
        from ..probe.fidelity import FidelityCheck, FidelityTarget

        target = FidelityTarget(options.min_agreement, options.max_error)
        checked = images if check_images is None else check_images
        check = FidelityCheck(work, checked, threads)

        def build(count: int) -> onnx.ModelProto:
            trial = onnx.ModelProto()
            trial.CopyFrom(work)
            apply_edits(trial, find_spaces(trial), edits_for(steps[:count], spaces))
            return trial

        n = search_prefix(steps, build, lambda m: target.met(check.measure(m)), progress=progress)
        summary["rule"] = (f"fidelity target: top-1 agreement >= {options.min_agreement:.2f}, relative error <= "
                           f"{options.max_error:.2f} on {len(checked)} probe images"
                           + ("" if check_images is None else " (the most decided of twice as many)"))
        summary["fidelity"] = check.measure(build(n))
    summary["channels_removed"] = n
    summary["images"] = int(len(images))
    chosen = steps[:n]
    for k in eligible:
        mine = [s for s in chosen if s.space == k]
        if mine:
            notes[k] = f"QSFM removed {len(mine)}, disturbance {sum(s.disturbance for s in mine):.3g}"
    return edits_for(chosen, spaces)
