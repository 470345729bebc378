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
3. Each layer gets one of "dense" or a candidate L, by one of two rules
   (each a multiple-choice knapsack, solved exactly by dynamic programming;
   disturbances are assumed to add up):
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
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx

from ..data.preprocess import FASHION_MNIST_MEAN_STD
from ..op.geometry import DEFAULT_TILE, MAX_HYPERPLANES
from ..plan import Plan
from .images import synthetic_probe
from .knapsack import choose, choose_within
from .layers import LayerProbe, choice_text, probe_layers

DEFAULT_CANDIDATES = (6, 8, 10, 12, 14, 16)
DEFAULT_PROBE_BUDGET = 13  # the budget rule's L: docs/ablations.md
BUDGET_DRAWS = 4  # draws of the budget L's hyperplanes whose mean disturbance is the budget


@dataclass
class Allocation:
    layers: Dict[str, Optional[Tuple[int, Tuple[int, int]]]]  # node -> (L, tile), or None: left dense
    probes: List[LayerProbe]
    target: Optional[float]  # the target rule's cut, or None under the budget rule
    conv_macs: float  # per image, all convs of the model
    estimated_cut: float  # net saving on the probe / conv MACs
    estimated_disturbance: float
    probe: str
    budget_hyperplanes: Optional[int] = None  # the budget rule's L (one L for every layer)
    budget: Optional[float] = None  # its summed disturbance on the probe
    uniform_cut: Optional[float] = None  # what that one L saves on the probe / conv MACs
    budget_draws: Optional[int] = None  # draws of that L's hyperplanes averaged into the budget
    inputs: Optional[str] = None  # the probe's images: data-free or data-light, and the preprocessing assumed

    def apply_to(self, plan: Plan) -> Plan:
        """`plan` with the probe's choice for every layer it measured: that L and tile, or kept dense. A layer
        the user pinned (`--layer-hyperplanes`/`--layer-tile`) keeps its planned settings."""
        changes = {}
        for layer in plan.layers:
            if layer.site not in self.layers or layer.pinned or layer.settings is None:
                continue
            choice = self.layers[layer.site]
            if choice is None:
                changes[layer.site] = replace(layer, settings=None,
                                              reason="left dense by the probe: its saving costs too much disturbance")
            else:
                changes[layer.site] = replace(layer, settings=replace(layer.settings, hyperplanes=choice[0],
                                                                      tile=tuple(choice[1])))
        summary = {k: v for k, v in self.to_json().items() if k != "layers"}
        return plan.with_layers(changes, rule=summary["rule"], probe=summary)

    def target_reached(self) -> bool:
        return self.target is None or self.estimated_cut >= self.target - 1e-9

    def summary_line(self) -> str:
        return self.line_from_json(self.to_json())

    @staticmethod
    def line_from_json(doc: dict) -> str:
        chosen = [c for c in doc["layers"].values() if c is not None]
        dense = len(doc["layers"]) - len(chosen)
        counts = [c["hyperplanes"] for c in chosen]
        tiles = sorted({"x".join(map(str, c["tile"])) for c in chosen})
        spread = (f"L={min(counts)}..{max(counts)}, tile {'/'.join(tiles)}" if chosen else "no layer replaced")
        if doc.get("target_cut") is not None:
            goal = (f"(target {100 * doc['target_cut']:.1f}%)" if doc["estimated_cut"] >= doc["target_cut"] - 1e-9
                    else f"(target {100 * doc['target_cut']:.1f}% NOT reached: every probed layer already takes its "
                         "largest saving)")
        else:
            draws = doc.get("budget_draws") or 1
            goal = (f"for no more disturbance than L={doc['budget_hyperplanes']} in every layer"
                    + (f" (mean of {draws} draws)" if draws > 1 else "")
                    + f", which cuts {100 * doc['uniform_cut']:.1f}%")
        return (f"hyperplanes per layer from the {doc['probe']} probe: {spread}"
                + (f", {dense} layer(s) left dense" if dense else "")
                + f"; cut on the probe {100 * doc['estimated_cut']:.1f}% of conv MACs with overheads {goal}")

    @classmethod
    def from_json(cls, doc: dict) -> "Allocation":
        """The choices of a stored allocation (`to_json`), to apply again; without the measurements."""
        layers = {n: (None if c is None else (c["hyperplanes"], tuple(c["tile"]))) for n, c in doc["layers"].items()}
        return cls(layers, [], doc.get("target_cut"), doc["conv_macs"], doc["estimated_cut"],
                   doc["estimated_disturbance"], doc["probe"], doc.get("budget_hyperplanes"),
                   doc.get("budget_disturbance"), doc.get("uniform_cut"), doc.get("budget_draws"),
                   doc.get("inputs"))

    def to_json(self) -> dict:
        return {"probe": self.probe, "rule": "target" if self.target is not None else "budget",
                "target_cut": self.target, "budget_hyperplanes": self.budget_hyperplanes,
                "budget_disturbance": self.budget, "budget_draws": self.budget_draws, "uniform_cut": self.uniform_cut,
                "estimated_cut": self.estimated_cut,
                "estimated_disturbance": self.estimated_disturbance, "conv_macs": self.conv_macs,
                "inputs": self.inputs,
                "layers": {n: (None if c is None else {"hyperplanes": c[0], "tile": list(c[1])})
                           for n, c in self.layers.items()},
                "measurements": [{"node": p.node, "dense_macs": p.dense_macs,
                                  "choices": {choice_text(c): {"disturbance": d, "net_saved_macs": s,
                                                               **({"other_draws": p.other_draws[c]}
                                                                  if c in p.other_draws else {})}
                                              for c, (d, s) in sorted(p.choices.items())}} for p in self.probes]}


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


def allocate(model: onnx.ModelProto, plan: Plan, target: Optional[float] = None,
             images: Optional[np.ndarray] = None, probe: str = "synthetic",
             candidates: Sequence[int] = DEFAULT_CANDIDATES, threads: Optional[int] = 2,
             mean: Sequence[float] = FASHION_MNIST_MEAN_STD[0], std: Sequence[float] = FASHION_MNIST_MEAN_STD[1],
             progress: Optional[Callable[[str], None]] = None,
             tiles: Optional[Sequence[Tuple[int, int]]] = None,
             budget_hyperplanes: Optional[int] = None, budget_draws: int = BUDGET_DRAWS,
             tile: Tuple[int, int] = DEFAULT_TILE) -> Allocation:
    """Choose L (and, with several `tiles`, the tile) for every layer `plan` replaces (see the module
    docstring): with `target`, the target rule; else the budget rule for one L = `budget_hyperplanes`
    (default DEFAULT_PROBE_BUDGET) in every layer at `tile`, its disturbance averaged over `budget_draws`
    draws of its hyperplanes (1: the seed's own only). `images` replace the synthetic probe when given.
    `Allocation.apply_to(plan)` gives the plan with the choice."""
    if target is not None and not 0.0 < target < 1.0:
        raise ValueError(f"the target cut must be in (0, 1), got {target}")
    if not candidates or any(not 1 <= c <= MAX_HYPERPLANES for c in candidates):
        raise ValueError(f"candidate hyperplane counts must be in 1..{MAX_HYPERPLANES}")
    if budget_draws < 1:
        raise ValueError(f"the budget's draws must be at least 1, got {budget_draws}")
    tiles = [tuple(t) for t in (tiles or [tile])]
    if target is None:
        budget_hyperplanes = budget_hyperplanes or DEFAULT_PROBE_BUDGET
        uniform = (budget_hyperplanes, tuple(tile))
        candidates = sorted(set(candidates) | {budget_hyperplanes})
        tiles = tiles if uniform[1] in tiles else tiles + [uniform[1]]
    if images is None:
        images = synthetic_probe(model, mean=mean, std=std)
    probes, conv_macs = probe_layers(model, np.ascontiguousarray(images, np.float32), plan,
                                     sorted(set(candidates)), threads, progress, tiles,
                                     None if target is not None else (uniform, budget_draws))
    if target is not None:
        layers, cut, disturbance = choose(probes, conv_macs, target)
        return Allocation(layers, probes, target, conv_macs, cut, disturbance, probe)
    budget = sum(p.mean_disturbance(uniform) for p in probes)
    uniform_cut = sum(p.choices[uniform][1] for p in probes) / conv_macs
    layers, cut, disturbance = choose_within(probes, conv_macs, budget)
    return Allocation(layers, probes, None, conv_macs, cut, disturbance, probe, budget_hyperplanes, budget,
                      uniform_cut, budget_draws)
