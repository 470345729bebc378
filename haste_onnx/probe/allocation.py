"""Hyperplanes per layer, chosen by probing the model: data-free by default.

One L for every layer spends FLOPs where they buy little accuracy: layers
differ in how much their merging disturbs the network's output per MAC saved
(docs/ablations.md). `allocate` measures that per layer and picks each
layer's L (or leaves the layer dense): by default the most conv MACs saved for
no more disturbance than one L everywhere, or a target share of the MACs for
the least disturbance:

1. Probe inputs. `synthetic_probe` makes images of smooth noise (Gaussian
   noise with a 1/f^2 amplitude spectrum, smoother than natural images' 1/f,
   scaled to [0, 1], then dark below a random level per image, normalised
   with the model's mean/std): no data set is read, so the result stays
   data-free.
   (`noise="blocky"`, uniform values on 4x4-pixel blocks, was the first
   probe; it ranks layers less like real images do: docs/ablations.md.)
   Callers may pass real unlabelled images instead (calibration, a separate
   and clearly named mode: `--probe fashion-mnist-train`).
2. For every layer the policy would replace and every candidate L, only that
   layer is rewritten and the probe is run: the disturbance is the mean
   KL divergence of the output's softmax from the original's (outputs of
   shape [N, K]), or else the output's relative squared error; the MACs
   saved, net of hashing, centring and merging, come from the kernel's own
   counters (`stats`).
3. With the time objective (the default), each candidate is also timed on
   this machine against the layer's Conv (`layer_time`); a candidate that is
   not measurably faster is not a choice, and the saving maximised is the
   time saved. With `--objective macs` it is the conv MACs saved.
4. Each layer gets one of "dense" or a candidate L, by one of three rules
   (each a multiple-choice knapsack, solved exactly by dynamic programming;
   disturbances are assumed to add up):
   - fidelity (the default): the largest saving whose rewritten model stays
     within an absolute fidelity target on the probe images
     (`fidelity.FidelityTarget`: top-1 agreement with the original, relative
     output error). The knapsack's disturbance budget is searched (bisection
     in log space) for the largest one whose whole rewritten model meets the
     target; each try rewrites and runs the whole model on the probe;
   - budget (the rewriter's default, `--probe-budget L`): the largest summed
     net saving whose summed disturbance is at most that of one L for every
     layer (L = 13 by default), averaged over `--budget-draws` draws of
     that L's hyperplanes (the seed's own and others). One draw alone makes
     the budget, and so the cut, depend on that draw's luck; the mean is
     what one L disturbs by the method, not by one seed. L = 13 is the
     largest saving measured within 1 pt of accuracy on the ResNet-18 of
     record (docs/ablations.md);
   - target (`--target-cut R`): the least summed disturbance whose summed net
     saving reaches R times the model's conv MACs.

The probe's noise merges differently from real images, so the saving reached
on real data differs from the target (with the blocky noise it was higher:
real feature maps are smoother; the smooth noise merges about as real images
do). What transfers is the ranking of the layers (docs/ablations.md has the
numbers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx

from ..data.preprocess import FASHION_MNIST_MEAN_STD
from ..op.geometry import DEFAULT_TILE, MAX_HYPERPLANES
from ..plan import Plan
from .fidelity import FidelityCheck, FidelityTarget, fidelity_text
from .images import synthetic_probe
from .knapsack import choose, choose_within, mac_saving
from .layer_time import TimingContext, measurably_faster
from .layers import LayerProbe, choice_text, probe_layers
from .options import BUDGET_DRAWS, DEFAULT_CANDIDATES, DEFAULT_PROBE_BUDGET  # noqa: F401 (re-exported)

SEARCH_STEPS = 10  # tries of the fidelity rule's bisection
DENSE_BY_PROBE = "left dense by the probe: its saving costs too much disturbance"


@dataclass
class Allocation:
    layers: Dict[str, Optional[Tuple[int, Tuple[int, int]]]]  # node -> (L, tile), or None: left dense
    probes: List[LayerProbe]
    target: Optional[float]  # the target rule's cut, or None under the other rules
    conv_macs: float  # per image, all convs of the model
    estimated_cut: float  # net saving on the probe / conv MACs
    estimated_disturbance: float
    probe: str
    budget_hyperplanes: Optional[int] = None  # the budget rule's L (one L for every layer)
    budget: Optional[float] = None  # its summed disturbance on the probe
    uniform_cut: Optional[float] = None  # what that one L saves on the probe / conv MACs
    budget_draws: Optional[int] = None  # draws of that L's hyperplanes averaged into the budget
    rule: Optional[str] = None  # "fidelity", "budget" or "target" (None: from `target`)
    objective: str = "macs"  # what was maximised: "time" or "macs"
    timing: Optional[dict] = None  # the timing context, under the time objective
    fidelity_target: Optional[dict] = None
    fidelity: Optional[dict] = None  # measured on the probe with the chosen layers (whole model)
    search: List[dict] = field(default_factory=list)  # the fidelity rule's tries: budget, saving, met
    speed: Optional[dict] = None  # the whole-model timing check (`planner`)
    inputs: Optional[str] = None  # the probe's images: data-free or data-light, and the preprocessing assumed

    def __post_init__(self):
        if self.rule is None:
            self.rule = "target" if self.target is not None else "budget"

    def time_saved_ms(self) -> Optional[float]:
        """The summed measured time saved per timed batch by the chosen layers (None when not timed)."""
        if self.objective != "time":
            return None
        by_node = {p.node: p for p in self.probes}
        return float(sum(by_node[n].time_saved(c) or 0.0 for n, c in self.layers.items()
                         if c is not None and n in by_node))

    def dense_reason(self, node: str) -> str:
        probe = next((p for p in self.probes if p.node == node), None)
        if self.objective == "time" and probe is not None and probe.times and \
                not any(measurably_faster(t) for t in probe.times.values()):
            best = min(probe.times.values(), key=lambda t: t["ms"])
            return (f"not faster than onnxruntime's Conv on this machine ({probe.dense_ms():.3f} ms as Conv, "
                    f"{best['ms']:.3f} ms at best as HasteConv)")
        if self.rule == "fidelity":
            return "left dense by the probe: the fidelity target allows no more"
        return DENSE_BY_PROBE

    def apply_to(self, plan: Plan) -> Plan:
        """`plan` with the probe's choice for every layer it measured: that L and tile, or kept dense. A layer
        the user pinned (`--layer-hyperplanes`/`--layer-tile`) keeps its planned settings."""
        by_node = {p.node: p for p in self.probes}
        changes = {}
        for layer in plan.layers:
            if layer.site not in self.layers or layer.pinned or layer.settings is None:
                continue
            choice = self.layers[layer.site]
            measured = _layer_json(by_node[layer.site], choice) if layer.site in by_node else None
            if choice is None:
                changes[layer.site] = replace(layer, settings=None, reason=self.dense_reason(layer.site),
                                              probe=measured)
            else:
                changes[layer.site] = replace(layer, settings=replace(layer.settings, hyperplanes=choice[0],
                                                                      tile=tuple(choice[1])), probe=measured)
        summary = {k: v for k, v in self.to_json().items() if k not in ("layers", "measurements")}
        return plan.with_layers(changes, rule=summary["rule"], probe=summary)

    def target_reached(self) -> bool:
        return self.target is None or self.estimated_cut >= self.target - 1e-9

    def nothing_to_do(self) -> Optional[str]:
        """Why no layer is replaced, when none is."""
        if any(c is not None for c in self.layers.values()):
            return None
        if self.objective == "time" and all(not any(measurably_faster(t) for t in p.times.values())
                                            for p in self.probes):
            return ("no layer runs faster as HasteConv than as onnxruntime's Conv on this machine (timed at batch "
                    f"{self.timing['batch']}, {self.timing['threads']} thread(s)); --objective macs replaces by MACs")
        if self.rule == "fidelity":
            return ("no layer can be replaced within the fidelity target (top-1 agreement >= "
                    f"{100 * self.fidelity_target['min_top1_agreement']:.1f}%, relative output error <= "
                    f"{self.fidelity_target['max_relative_error']}); --min-agreement/--max-error loosen it")
        return "the probe left every layer dense"

    def summary_line(self) -> str:
        return self.line_from_json(self.to_json())

    @staticmethod
    def line_from_json(doc: dict) -> str:
        chosen = [c for c in doc["layers"].values() if c is not None]
        dense = len(doc["layers"]) - len(chosen)
        counts = [c["hyperplanes"] for c in chosen]
        tiles = sorted({"x".join(map(str, c["tile"])) for c in chosen})
        ls = f"L={min(counts)}" if chosen and min(counts) == max(counts) else f"L={min(counts or [0])}..{max(counts or [0])}"
        spread = f"{ls}, tile {'/'.join(tiles)}" if chosen else "no layer replaced"
        rule = doc.get("rule")
        if doc.get("target_cut") is not None:
            goal = (f"(target {100 * doc['target_cut']:.1f}%)" if doc["estimated_cut"] >= doc["target_cut"] - 1e-9
                    else f"(target {100 * doc['target_cut']:.1f}% NOT reached: every probed layer already takes its "
                         "largest saving)")
        elif rule == "fidelity":
            target = doc["fidelity_target"]
            goal = (f"within the fidelity target (top-1 agreement >= {100 * target['min_top1_agreement']:.1f}%, "
                    f"relative output error <= {target['max_relative_error']})")
        else:
            draws = doc.get("budget_draws") or 1
            goal = (f"for no more disturbance than L={doc['budget_hyperplanes']} in every layer"
                    + (f" (mean of {draws} draws)" if draws > 1 else "")
                    + f", which cuts {100 * doc['uniform_cut']:.1f}%")
        line = (f"hyperplanes per layer from the {doc['probe']} probe: {spread}"
                + (f", {dense} layer(s) left dense" if dense else "")
                + f"; cut on the probe {100 * doc['estimated_cut']:.1f}% of conv MACs with overheads {goal}")
        if doc.get("objective") == "time" and doc.get("time_saved_ms") is not None:
            t = doc["timing"]
            line += (f"; the replaced layers save {doc['time_saved_ms']:.3f} of {doc['dense_ms']:.3f} ms as timed "
                     f"(batch {t['batch']}, {t['threads']} thread(s))")
        if doc.get("fidelity") and chosen:
            line += f"\nfidelity on the probe: {fidelity_text(doc['fidelity'])}"
        return line

    @classmethod
    def from_json(cls, doc: dict) -> "Allocation":
        """The choices of a stored allocation (`to_json`), to apply again; without the measurements."""
        layers = {n: (None if c is None else (c["hyperplanes"], tuple(c["tile"]))) for n, c in doc["layers"].items()}
        return cls(layers, [], doc.get("target_cut"), doc["conv_macs"], doc["estimated_cut"],
                   doc["estimated_disturbance"], doc["probe"], doc.get("budget_hyperplanes"),
                   doc.get("budget_disturbance"), doc.get("uniform_cut"), doc.get("budget_draws"),
                   doc.get("rule"), doc.get("objective", "macs"), doc.get("timing"), doc.get("fidelity_target"),
                   doc.get("fidelity"), doc.get("search") or [], doc.get("speed"),
                   doc.get("inputs"))

    def to_json(self) -> dict:
        doc = {"probe": self.probe, "rule": self.rule, "objective": self.objective,
               "target_cut": self.target, "budget_hyperplanes": self.budget_hyperplanes,
               "budget_disturbance": self.budget, "budget_draws": self.budget_draws, "uniform_cut": self.uniform_cut,
               "estimated_cut": self.estimated_cut,
               "estimated_disturbance": self.estimated_disturbance, "conv_macs": self.conv_macs,
               "layers": {n: (None if c is None else {"hyperplanes": c[0], "tile": list(c[1])})
                          for n, c in self.layers.items()},
               "measurements": [_measurement_json(p) for p in self.probes]}
        if self.objective == "time":
            doc.update(timing=self.timing, time_saved_ms=self.time_saved_ms(),
                       dense_ms=float(sum(p.dense_ms() or 0.0 for p in self.probes)))
        if self.fidelity_target is not None:
            doc["fidelity_target"] = self.fidelity_target
        if self.fidelity is not None:
            doc["fidelity"] = self.fidelity
        if self.search:
            doc["search"] = self.search
        if self.speed is not None:
            doc["speed"] = self.speed
        if self.inputs is not None:
            doc["inputs"] = self.inputs
        return doc


def _measurement_json(p: LayerProbe) -> dict:
    doc = {"node": p.node, "dense_macs": p.dense_macs,
           "choices": {choice_text(c): {"disturbance": d, "net_saved_macs": s,
                                        **({"other_draws": p.other_draws[c]} if c in p.other_draws else {}),
                                        **({"ms": p.times[c]["ms"], "ratio_p25": p.times[c]["ratio"]["p25"]}
                                           if c in p.times else {})}
                       for c, (d, s) in sorted(p.choices.items())}}
    if p.conv_ms:
        doc["conv_ms"] = p.dense_ms()
    return doc


def _layer_json(p: LayerProbe, choice) -> dict:
    """What the plan records of one probed layer: its choice's disturbance, MACs and times."""
    doc = {"dense_macs": p.dense_macs, "conv_ms": p.dense_ms()}
    if choice is not None:
        d, s = p.choices[choice]
        doc.update(disturbance=d, net_saved_macs=s)
        if choice in p.times:
            doc["haste_ms"] = p.times[choice]["ms"]
    return doc


@dataclass
class NoProbe:
    """The default rule could not probe this model: one L for every layer, and why."""

    reason: str
    hyperplanes: int

    def summary_line(self) -> str:
        return allocation_line(self.to_json())

    def to_json(self) -> dict:
        return {"probe": None, "skipped": self.reason, "hyperplanes": self.hyperplanes}


def allocation_line(doc: dict) -> str:
    """The summary line of an Allocation's or a NoProbe's JSON."""
    if doc.get("skipped"):
        return f"one L={doc['hyperplanes']} for every layer: no probe ({doc['skipped']})"
    return Allocation.line_from_json(doc)


def time_value(probe: LayerProbe, choice) -> Optional[float]:
    """The time objective's value of a choice: milliseconds saved, when measurably faster than the Conv."""
    timing = probe.times.get(choice)
    return probe.time_saved(choice) if measurably_faster(timing) else None


def allocate(model: onnx.ModelProto, plan: Plan, target: Optional[float] = None,
             images: Optional[np.ndarray] = None, probe: str = "synthetic",
             candidates: Sequence[int] = DEFAULT_CANDIDATES, threads: Optional[int] = 2,
             mean: Sequence[float] = FASHION_MNIST_MEAN_STD[0], std: Sequence[float] = FASHION_MNIST_MEAN_STD[1],
             progress: Optional[Callable[[str], None]] = None,
             tiles: Optional[Sequence[Tuple[int, int]]] = None,
             budget_hyperplanes: Optional[int] = None, budget_draws: int = BUDGET_DRAWS,
             tile: Tuple[int, int] = DEFAULT_TILE, rule: Optional[str] = None, objective: str = "macs",
             fidelity: Optional[FidelityTarget] = None, timing: Optional[TimingContext] = None) -> Allocation:
    """Choose L (and, with several `tiles`, the tile) for every layer `plan` replaces (see the module
    docstring). `rule`: "target" (with `target`), "budget" (one L = `budget_hyperplanes`, default
    DEFAULT_PROBE_BUDGET, in every layer at `tile`, its disturbance averaged over `budget_draws` draws of
    its hyperplanes) or "fidelity" (within `fidelity`); None: "target" when `target` is given, else
    "budget". `objective` "time" times every candidate with `timing` and maximises the time saved; "macs"
    the conv MACs saved. `images` replace the synthetic probe when given. `Allocation.apply_to(plan)` gives
    the plan with the choice."""
    rule = rule or ("target" if target is not None else "budget")
    if (rule == "target") != (target is not None):
        raise ValueError("the target rule needs a target cut, and only it takes one")
    if target is not None and not 0.0 < target < 1.0:
        raise ValueError(f"the target cut must be in (0, 1), got {target}")
    if not candidates or any(not 1 <= c <= MAX_HYPERPLANES for c in candidates):
        raise ValueError(f"candidate hyperplane counts must be in 1..{MAX_HYPERPLANES}")
    if budget_draws < 1:
        raise ValueError(f"the budget's draws must be at least 1, got {budget_draws}")
    if objective not in ("time", "macs"):
        raise ValueError(f"the objective must be time or macs, got {objective!r}")
    timing = timing or TimingContext() if objective == "time" else None
    fidelity = fidelity or FidelityTarget() if rule == "fidelity" else None
    tiles = [tuple(t) for t in (tiles or [tile])]
    if rule == "budget":
        budget_hyperplanes = budget_hyperplanes or DEFAULT_PROBE_BUDGET
        uniform = (budget_hyperplanes, tuple(tile))
        candidates = sorted(set(candidates) | {budget_hyperplanes})
        tiles = tiles if uniform[1] in tiles else tiles + [uniform[1]]
    if images is None:
        images = synthetic_probe(model, mean=mean, std=std)
    images = np.ascontiguousarray(images, np.float32)
    probes, conv_macs = probe_layers(model, images, plan, sorted(set(candidates)), threads, progress, tiles,
                                     (uniform, budget_draws) if rule == "budget" else None, timing)
    common = dict(rule=rule, objective=objective, timing=timing.to_json() if timing else None,
                  fidelity_target=fidelity.to_json() if fidelity else None)
    if rule == "target":
        layers, cut, disturbance = choose(probes, conv_macs, target)
        return Allocation(layers, probes, target, conv_macs, cut, disturbance, probe, **common)
    value, total = ((time_value, sum(p.dense_ms() or 0.0 for p in probes)) if objective == "time"
                    else (mac_saving, conv_macs))
    if rule == "budget":
        budget = sum(p.mean_disturbance(uniform) for p in probes)
        uniform_cut = sum(p.choices[uniform][1] for p in probes) / conv_macs
        layers, cut, disturbance = choose_within(probes, conv_macs, budget, value=value, total=total or None)
        return Allocation(layers, probes, None, conv_macs, cut, disturbance, probe, budget_hyperplanes, budget,
                          uniform_cut, budget_draws, **common)
    return _within_fidelity(model, plan, images, probes, conv_macs, threads, value, total, fidelity, probe, common,
                            progress)


def _within_fidelity(model, plan, images, probes, conv_macs, threads, value, total, fidelity, probe, common,
                     progress) -> Allocation:
    """The fidelity rule: bisection over the knapsack's disturbance budget, in log space, for the largest budget
    whose whole rewritten model meets `fidelity` on the probe images."""
    from ..rewrite import rewrite_model

    say = progress or (lambda text: None)
    check = FidelityCheck(model, images, threads)
    positive = [d for p in probes for c, (d, _) in p.choices.items() if d > 0 and (value(p, c) or 0) > 0]
    empty = {p.node: None for p in probes}
    best = (empty, 0.0, 0.0, None)
    search: List[dict] = []
    tried: Dict[tuple, Tuple[bool, dict]] = {}

    def attempt(budget: float):
        layers, cut, disturbance = choose_within(probes, conv_macs, budget, value=value, total=total or None)
        key = tuple(sorted((n, c) for n, c in layers.items() if c is not None))
        if not key:
            return True, layers, cut, disturbance, None
        if key not in tried:
            chosen = Allocation(layers, probes, None, conv_macs, cut, disturbance, probe, **common)
            rewritten, _ = rewrite_model(model, chosen.apply_to(plan))
            measured = check.measure(rewritten)
            tried[key] = (fidelity.met(measured), measured)
        met, measured = tried[key]
        search.append({"budget": budget, "layers": len(key), "cut": cut, "met": met,
                       "fidelity": {"top1_agreement": measured.get("top1_agreement"),
                                    "relative_error": max(e["mean"] for e in measured["relative_error"].values())}})
        return met, layers, cut, disturbance, measured

    if positive:
        lo, hi = math.log(min(positive)) - 1.0, math.log(sum(max(d for d, _ in p.choices.values()) for p in probes))
        say(f"searching the largest saving within the fidelity target ({SEARCH_STEPS} tries at most) ...")
        met, layers, cut, disturbance, measured = attempt(math.exp(hi))
        if met:
            best = (layers, cut, disturbance, measured)
        else:
            for _ in range(SEARCH_STEPS):
                mid = (lo + hi) / 2
                met, layers, cut, disturbance, measured = attempt(math.exp(mid))
                if met:
                    lo = mid
                    if measured is not None and _saving(probes, layers, value) >= _saving(probes, best[0], value):
                        best = (layers, cut, disturbance, measured)
                else:
                    hi = mid
    layers, cut, disturbance, measured = best
    if measured is None:  # nothing chosen: the original itself, exactly
        measured = check.measure(model)
    return Allocation(layers, probes, None, conv_macs, cut, disturbance, probe, fidelity=measured, search=search,
                      **common)


def _saving(probes, layers, value) -> float:
    by_node = {p.node: p for p in probes}
    return sum(value(by_node[n], c) or 0.0 for n, c in layers.items() if c is not None)
