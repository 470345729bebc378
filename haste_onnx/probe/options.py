"""How the probe chooses each layer's L: the rule, what it maximises, the fidelity target, the timing context."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ..model_inputs import InputSpec
from .fidelity import FidelityTarget
from .layer_time import TimingContext

DEFAULT_CANDIDATES = (6, 8, 10, 12, 14, 16)
DEFAULT_PROBE_BUDGET = 13  # the relative rule's L: docs/ablations.md
BUDGET_DRAWS = 4  # draws of the budget L's hyperplanes whose mean disturbance is the budget
# fidelity: the most saved within an absolute fidelity target on the probe (the default);
# budget: within the disturbance of one L in every layer (relative); target: a share of the conv MACs
RULES = ("fidelity", "budget", "target")
OBJECTIVES = ("time", "macs")  # what the probe maximises: time measured on this machine, or conv MACs


@dataclass(frozen=True)
class ProbeOptions:
    """How the probe chooses L per layer; `rule` None: no probe (one L for every layer)."""

    rule: Optional[str] = "fidelity"
    objective: str = "time"
    target_cut: Optional[float] = None  # the target rule's share of the conv MACs
    budget_hyperplanes: Optional[int] = None  # the budget rule's L (None: DEFAULT_PROBE_BUDGET)
    budget_draws: int = BUDGET_DRAWS
    fidelity: FidelityTarget = field(default_factory=FidelityTarget)
    timing: TimingContext = field(default_factory=TimingContext)
    source: str = "synthetic"  # synthetic, synthetic-blocky or fashion-mnist-train
    images: Optional[int] = None  # probe images (None: default_probe_count)
    candidates: Tuple[int, ...] = DEFAULT_CANDIDATES
    candidate_tiles: Optional[Tuple[Tuple[int, int], ...]] = None  # None: the options' tile only
    threads: Optional[int] = 2  # threads of the probe's accuracy runs (timing has its own)
    inputs: InputSpec = field(default_factory=InputSpec)  # what the model's input looks like

    def validate(self) -> None:
        if self.rule is not None and self.rule not in RULES:
            raise ValueError(f"unknown probe rule {self.rule!r}; expected one of {', '.join(RULES)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; expected one of {', '.join(OBJECTIVES)}")
        if (self.rule == "target") != (self.target_cut is not None):
            raise ValueError("the target rule needs a target cut, and only it takes one")
        if self.rule == "target" and self.objective != "macs":
            raise ValueError("the target rule is a share of the conv MACs: its objective is macs")
