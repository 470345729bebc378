"""The default plan: the layer policy decides which Convs may be replaced, then the probe picks each one's L.

`plan_with_probe` is what `rewrite`, `eval`, `bench` and `demo` run. Under
the default (budget) rule a model the probe cannot feed (an input of symbolic
size, several inputs; no op library) gets the options' one L for every layer,
and the returned `NoProbe` says why; under the target rule that is an error.
A model with nothing to replace is not probed (the rewrite then says why),
and under the budget rule a model that holds HasteConv already is left as it
is (rewriting a rewritten model changes nothing).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence, Tuple, Union

import onnx

from ..errors import CheckError, InputError
from ..model_inputs import InputSpec, with_input_shape
from ..plan import HashingOptions, Plan, Policy, plan_model
from .allocation import BUDGET_DRAWS, DEFAULT_CANDIDATES, Allocation, NoProbe, allocate
from .images import probe_images

RULES = ("budget", "target")
ALREADY_REWRITTEN = "the model holds HasteConv already: the probe's choice stands (-L or --target-cut replace more)"


@dataclass(frozen=True)
class ProbeOptions:
    """How the probe chooses L per layer; `rule` None: no probe (one L for every layer)."""

    rule: Optional[str] = "budget"
    target_cut: Optional[float] = None  # the target rule's share of the conv MACs
    budget_hyperplanes: Optional[int] = None  # the budget rule's L (None: DEFAULT_PROBE_BUDGET)
    budget_draws: int = BUDGET_DRAWS
    source: str = "synthetic"  # synthetic, synthetic-blocky or fashion-mnist-train
    images: Optional[int] = None  # probe images (None: default_probe_count)
    candidates: Tuple[int, ...] = DEFAULT_CANDIDATES
    candidate_tiles: Optional[Tuple[Tuple[int, int], ...]] = None  # None: the options' tile only
    threads: Optional[int] = 2
    inputs: InputSpec = InputSpec()  # what the model's input looks like (layout, shape, range, calibration)

    def validate(self) -> None:
        if self.rule is not None and self.rule not in RULES:
            raise ValueError(f"unknown probe rule {self.rule!r}; expected one of {', '.join(RULES)}")
        if (self.rule == "target") != (self.target_cut is not None):
            raise ValueError("the target rule needs a target cut, and only it takes one")


def plan_with_probe(model: onnx.ModelProto, options: HashingOptions = HashingOptions(), policy: Policy = Policy(),
                    probe: ProbeOptions = ProbeOptions(), mean: Optional[Sequence[float]] = None,
                    std: Optional[Sequence[float]] = None,
                    progress: Optional[Callable[[str], None]] = None) -> Tuple[Plan, Union[Allocation, NoProbe, None]]:
    """(plan, what the probe did: an Allocation, a NoProbe saying why it did not run, or None: not asked)."""
    from ..runtime import LibraryNotFoundError, get_library_path

    probe.validate()
    plan = plan_model(model, options, policy)
    if probe.rule is None:
        return plan, None
    if probe.rule == "budget" and any(layer.shape.op != "Conv" for layer in plan.layers):
        kept = {layer.site: replace(layer, settings=None, reason=ALREADY_REWRITTEN)
                for layer in plan.layers if layer.replaced}
        return plan.with_layers(kept, rule="budget", probe=None), None
    if not plan.replaced():
        return plan, None
    try:
        get_library_path()
        images, mean, std, assumed = probe_images(model, probe, mean, std)
    except (InputError, LibraryNotFoundError) as err:
        if probe.rule == "budget" and probe.source == "synthetic" and not probe.inputs.calibration:
            skipped = NoProbe(str(err), options.hyperplanes)
            return plan.with_layers({}, probe=skipped.to_json()), skipped
        if isinstance(err, LibraryNotFoundError):
            raise CheckError(str(err)) from err
        raise
    model = with_input_shape(model, images.shape)  # free dims take the probe images' size
    allocation = allocate(model, plan, probe.target_cut, images=images, probe=probe.source,
                          candidates=probe.candidates, threads=probe.threads, mean=mean, std=std, progress=progress,
                          tiles=list(probe.candidate_tiles) if probe.candidate_tiles else None,
                          budget_hyperplanes=probe.budget_hyperplanes, budget_draws=probe.budget_draws,
                          tile=tuple(options.tile))
    allocation.inputs = assumed
    return allocation.apply_to(plan), allocation
