"""The default plan: the layer policy decides which Convs may be replaced, then the probe picks each one's L.

`plan_with_probe` is what `rewrite`, `eval`, `bench` and `demo` run. By
default (the fidelity rule, the time objective) every candidate is timed on
this machine and the plan keeps the largest measured time saving whose whole
rewritten model stays within the fidelity target on the probe; then the
whole rewritten model is timed against the original (`speed_check`), and
layers are given back to Conv, least saving first, until it is not slower.

Under the budget and fidelity rules a model the probe cannot feed (an input
of symbolic size, several inputs; no op library) gets the options' one L for
every layer, and the returned `NoProbe` says why; under the target rule that
is an error. A model with nothing to replace is not probed (the rewrite then
says why), and a model that holds HasteConv already is left as it is
(rewriting a rewritten model changes nothing).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import onnx

from ..errors import CheckError, InputError
from ..model_inputs import with_input_shape
from ..plan import HashingOptions, Plan, Policy, plan_model
from .allocation import Allocation, NoProbe, allocate
from .images import probe_images
from .knapsack import totals
from .layer_time import TimingContext
from .options import ProbeOptions  # noqa: F401 (re-exported: the planner's options)

ALREADY_REWRITTEN = "the model holds HasteConv already: the probe's choice stands (-L or --target-cut replace more)"
SPEED_CHECK_REPEATS = 20
MAX_GIVE_BACKS = 4  # layers given back to Conv one at a time before the check gives up on the rest
SLOWER = "given back to Conv: the whole rewritten model was not faster with it"
# Fidelity is checked on at least this many images: large inputs get few probe images (default_probe_count),
# too few for a top-1 agreement to mean much.
MIN_FIDELITY_IMAGES = 32


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
    if probe.rule != "target" and any(layer.shape.op != "Conv" for layer in plan.layers):
        kept = {layer.site: replace(layer, settings=None, reason=ALREADY_REWRITTEN)
                for layer in plan.layers if layer.replaced}
        return plan.with_layers(kept, rule=probe.rule, probe=None), None
    if not plan.replaced():
        return plan, None
    try:
        get_library_path()
        images, mean, std, assumed = probe_images(model, probe, mean, std)
    except (InputError, LibraryNotFoundError) as err:
        if probe.rule != "target" and probe.source == "synthetic" and not probe.inputs.calibration:
            skipped = NoProbe(str(err), options.hyperplanes)
            return plan.with_layers({}, probe=skipped.to_json()), skipped
        if isinstance(err, LibraryNotFoundError):
            raise CheckError(str(err)) from err
        raise
    model = with_input_shape(model, images.shape)  # free dims take the probe images' size
    checked = images
    if len(images) < MIN_FIDELITY_IMAGES and probe.images is None and not probe.inputs.calibration:
        checked = probe_images(model, replace(probe, images=MIN_FIDELITY_IMAGES), mean, std)[0]
    allocation = allocate(model, plan, probe.target_cut, images=images, probe=probe.source,
                          candidates=probe.candidates, threads=probe.threads, mean=mean, std=std, progress=progress,
                          tiles=list(probe.candidate_tiles) if probe.candidate_tiles else None,
                          budget_hyperplanes=probe.budget_hyperplanes, budget_draws=probe.budget_draws,
                          tile=tuple(options.tile), rule=probe.rule, objective=probe.objective,
                          fidelity=probe.fidelity, timing=probe.timing, fidelity_images=checked)
    allocation.inputs = assumed
    if allocation.objective == "time":
        allocation = speed_check(model, plan, allocation, images, probe.timing, progress)
    if allocation.fidelity is None and any(c is not None for c in allocation.layers.values()):
        allocation.fidelity = final_fidelity(model, allocation.apply_to(plan), checked, probe.threads)
    return allocation.apply_to(plan), allocation


def final_fidelity(model: onnx.ModelProto, plan: Plan, images: np.ndarray, threads: Optional[int]) -> dict:
    """The rewritten model's fidelity to the original on the probe images."""
    from ..rewrite import rewrite_model
    from .fidelity import FidelityCheck

    return FidelityCheck(model, images, threads).measure(rewrite_model(model, plan)[0])


def time_models(original: onnx.ModelProto, rewritten: onnx.ModelProto, images: np.ndarray,
                timing: TimingContext) -> dict:
    """Both whole models timed alternately on the timing batch: medians and the per-pair ratios."""
    from ..measure.sessions import bench_session
    from ..measure.timing import pair_ratios, time_alternating

    a, b = bench_session(original, timing.threads), bench_session(rewritten, timing.threads)
    feed = {a.get_inputs()[0].name: np.ascontiguousarray(images[:timing.batch])}
    first, second = time_alternating(a, b, feed, SPEED_CHECK_REPEATS, timing.warmup, timing.clock())
    return {"original_ms": float(np.median(first)), "rewritten_ms": float(np.median(second)),
            "ratio": pair_ratios(first, second)}


def not_slower(timed: dict) -> bool:
    """The rewritten model is not slower: the median pair ratio at least 1 and the lower quartile at least 0.97."""
    return timed["ratio"]["median"] >= 1.0 and timed["ratio"]["p25"] >= 0.97


def speed_check(model: onnx.ModelProto, plan: Plan, allocation: Allocation, images: np.ndarray,
                timing: TimingContext, progress: Optional[Callable[[str], None]] = None) -> Allocation:
    """Time the whole rewritten model against the original; while it is slower, give the chosen layer that saves
    the least back to Conv (at most MAX_GIVE_BACKS times, then all of them). Records every try."""
    from ..rewrite import rewrite_model

    say = progress or (lambda text: None)
    layers = dict(allocation.layers)
    tries = []
    by_node = {p.node: p for p in allocation.probes}
    while any(c is not None for c in layers.values()):
        trial = replace(allocation, layers=dict(layers))
        say(f"timing the whole model with {sum(c is not None for c in layers.values())} layer(s) replaced ...")
        timed = time_models(model, rewrite_model(model, trial.apply_to(plan))[0], images, timing)
        tries.append({"layers": sum(c is not None for c in layers.values()), **timed})
        if not_slower(timed):
            break
        chosen = [n for n, c in layers.items() if c is not None]
        if len(tries) > MAX_GIVE_BACKS:
            layers = {n: None for n in layers}
            break
        worst = min(chosen, key=lambda n: by_node[n].time_saved(layers[n]) or 0.0)
        layers[worst] = None
    given_back = [n for n, c in allocation.layers.items() if c is not None and layers[n] is None]
    _, cut, disturbance = totals(allocation.probes, layers, allocation.conv_macs)  # of what is left
    result = replace(allocation, layers=layers, estimated_cut=cut, estimated_disturbance=disturbance,
                     speed={"tries": tries, "given_back": given_back, "repeats": SPEED_CHECK_REPEATS})
    if given_back:
        result.fidelity = None  # measured again on what is left
    return result
