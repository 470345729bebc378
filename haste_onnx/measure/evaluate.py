"""Accuracy and measured conv work of a model before and after the HASTE rewrite.

`evaluate(model, images, labels, options)` rewrites `model` (the same
hashing options and layer selection as `haste-onnx rewrite`), gives every
HasteConv node of the main graph its optional second output `stats` (int64
[7], see docs/op_spec.md) in an in-memory copy and makes those graph outputs,
runs the original and the rewritten model in onnxruntime with the op library
over `images` in batches, and returns plain data (the `--json` object of
`haste-onnx eval`):

- top-1 accuracy of both models with a 95% Wilson score interval, the paired
  difference with a 95% paired-bootstrap interval, and the agreement of their
  predictions;
- conv MACs per image of the original, from shapes (every Conv);
- per replaced layer the counters the kernel measured on these images, per
  image: dense MACs, HASTE MACs, overheads (centring + hashing + merging ops)
  and the mean C'/C (merged over original channels, averaged over tiles);
- totals: the cut of all conv MACs and of the replaced layers' MACs, without
  and with the overheads (an overhead op, an add, counts as one MAC).

With several hyperplane seeds (`options.seeds`) the rewrite and the run are
repeated per seed (with `options.plans`, each seed's own plan, as the probe
made it for that seed); `summary` gives mean, sample standard deviation, min and
max over the seeds. The original model runs once.

A model that already contains HasteConv nodes is evaluated as it is (the
"rewritten" model); its HasteConvs turned back into Convs (`strip_model`) are
the original, and the hashing options and seeds are not used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import List, Optional, Sequence

import numpy as np
import onnx

from ..plan import HashingOptions, Plan, Policy, plan_model
from .conv_work import conv_layers, layer_rows, static_by_layer, totals
from .instrument import add_stats_outputs, count_haste
from .predictor import Predictor
from .statistics import BOOTSTRAP_SEED, accuracy_block, paired_bootstrap, spread

__all__ = ["EvalOptions", "SeedPlan", "evaluate", "summarize"]


@dataclass(frozen=True)
class SeedPlan:
    """The plan of one seed's rewrite, and the probe's JSON when a probe made it."""

    seed: int
    plan: Plan
    allocation: Optional[dict] = None


@dataclass
class EvalOptions:
    hashing: HashingOptions = field(default_factory=HashingOptions)
    policy: Policy = field(default_factory=Policy)
    seeds: Optional[Sequence[int]] = None  # hyperplane base seeds; None: hashing.seed only
    batch: int = 100
    threads: Optional[int] = 2  # intra-op threads of both sessions (None: onnxruntime's default)
    bootstrap: int = 2000  # resamples for the interval of the accuracy difference
    # The plan of each seed's rewrite, when the caller made them (the probe measures each seed's own
    # hyperplanes); None: `plan_model` of `hashing` with the seed and `policy`.
    plans: Optional[Sequence[SeedPlan]] = None

    def seed_list(self) -> List[int]:
        if self.plans:
            return [p.seed for p in self.plans]
        return list(self.seeds) if self.seeds else [self.hashing.seed]

    def seed_plan(self, model: onnx.ModelProto, seed: int) -> SeedPlan:
        for given in self.plans or ():
            if given.seed == seed:
                return given
        return SeedPlan(seed, plan_model(model, replace(self.hashing, seed=seed), self.policy))

    def to_json(self) -> dict:
        return {"hashing": self.hashing.to_json(), "policy": asdict(self.policy),
                "seeds": self.seed_list(), "batch": self.batch, "threads": self.threads,
                "bootstrap_resamples": self.bootstrap, "bootstrap_seed": BOOTSTRAP_SEED}


def evaluate(model: onnx.ModelProto, images: np.ndarray, labels: np.ndarray,
             options: Optional[EvalOptions] = None, progress=None) -> dict:
    """Evaluate original vs rewritten `model` on prepared `images` (float32 NCHW) and `labels`.

    See the module docstring for what is measured; numbers are fractions
    (accuracy 0.91, reduction 0.25) and MACs/ops are per image. `progress`,
    if given, is called with one line of text before each run.
    """
    from ..check import uses_haste
    from ..rewrite import rewrite_model, strip_model

    options = options or EvalOptions()
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise ValueError("no images to evaluate")
    if options.batch < 1:
        raise ValueError("batch must be >= 1")
    say = progress or (lambda text: None)
    prebuilt = uses_haste(model) and count_haste(model) != (0, 0)
    if prebuilt:
        original, _ = strip_model(model)
    else:
        original = model
    static_rows = conv_layers(original)
    original_macs = sum(r["macs"] for r in static_rows if r["macs"] is not None)
    unknown = sum(1 for r in static_rows if r["macs"] is None)
    n = len(images)

    say(f"original model on {n} images ...")
    orig_pred, _, orig_seconds = Predictor(original, options.threads).predict(images, options.batch)
    orig_correct = orig_pred == labels
    result = {
        "images": n,
        "settings": options.to_json() if not prebuilt else {**options.to_json(), "hashing": "from the model",
                                                           "seeds": [None]},
        "original": {**accuracy_block(orig_correct), "conv_macs": original_macs, "conv_layers": len(static_rows),
                     "layers_with_unknown_macs": unknown, "seconds": orig_seconds},
        "runs": [],
    }
    static = static_by_layer(static_rows)
    for seed in ([None] if prebuilt else options.seed_list()):
        if prebuilt:
            rewritten, report_rows, allocation = model, None, None
        else:
            chosen = options.seed_plan(model, seed)
            allocation = chosen.allocation
            rewritten, report = rewrite_model(model, chosen.plan)
            report_rows = report.layers
        measured, pairs = add_stats_outputs(rewritten)
        main, nested = count_haste(rewritten)
        say(f"rewritten model{'' if seed is None else f' (seed {seed})'}: {main + nested} HasteConv layers ...")
        pred, counted, seconds = Predictor(measured, options.threads, pairs).predict(images, options.batch)
        correct = pred == labels
        layers = layer_rows(pairs, counted, static, n, rewritten)
        lo, hi = paired_bootstrap(orig_correct, correct, options.bootstrap)
        run = {
            "seed": seed,
            **accuracy_block(correct),
            "difference": {"accuracy": float(np.mean(correct) - np.mean(orig_correct)), "ci95": [lo, hi],
                           "ci_method": f"paired bootstrap over images, {options.bootstrap} resamples"},
            "agreement": float(np.mean(pred == orig_pred)),
            "haste_layers": main + nested,
            "unmeasured_layers": nested,
            "kept_layers": (sum(1 for r in report_rows if r.status == "kept") if report_rows is not None
                            else len(static_rows) - main - nested),
            "layers": layers,
            "totals": totals(layers, original_macs),
            "seconds": seconds,
        }
        if report_rows is not None:
            run["plan"] = chosen.plan.summary_line()
        if allocation is not None:
            run["allocation"] = allocation
        result["runs"].append(run)
    result["summary"] = summarize(result["runs"])
    return result


def summarize(runs: List[dict]) -> dict:
    keys = ("conv_mac_reduction", "conv_mac_reduction_with_overheads", "replaced_mac_reduction",
            "replaced_mac_reduction_with_overheads", "channel_ratio")
    out = {"seeds": [r["seed"] for r in runs],
           "accuracy": spread([r["accuracy"] for r in runs]),
           "difference": spread([r["difference"]["accuracy"] for r in runs]),
           "agreement": spread([r["agreement"] for r in runs])}
    for k in keys:
        out[k] = spread([r["totals"][k] for r in runs])
    return out
