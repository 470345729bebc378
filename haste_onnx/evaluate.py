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
repeated per seed; `summary` gives mean, sample standard deviation, min and
max over the seeds. The original model runs once.

A model that already contains HasteConv nodes is evaluated as it is (the
"rewritten" model); its HasteConvs turned back into Convs (`strip_model`) are
the original, and the hashing options and seeds are not used.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper

from .op.geometry import DOMAIN, OP_TYPE
from .op.reference import STATS_FIELDS
from .policy import Policy
from .rewrite.conv_to_haste import HashingOptions

__all__ = ["EvalOptions", "evaluate", "prepare_images", "add_stats_outputs", "conv_layers", "wilson_interval",
           "paired_bootstrap", "measure_latency", "versions", "Predictor"]

BOOTSTRAP_SEED = 0


@dataclass
class EvalOptions:
    hashing: HashingOptions = field(default_factory=HashingOptions)
    policy: Policy = field(default_factory=Policy)
    seeds: Optional[Sequence[int]] = None  # hyperplane base seeds; None: hashing.seed only
    batch: int = 100
    threads: Optional[int] = 2  # intra-op threads of both sessions (None: onnxruntime's default)
    bootstrap: int = 2000  # resamples for the interval of the accuracy difference
    # seed -> (hashing, policy, allocation JSON or None): the options of that seed's rewrite, when they depend
    # on the seed (the probe measures each seed's own hyperplanes); None: `hashing` with the seed, `policy`
    per_seed: Optional[Callable[[int], Tuple[HashingOptions, Policy, Optional[dict]]]] = None

    def seed_list(self) -> List[int]:
        return list(self.seeds) if self.seeds else [self.hashing.seed]

    def to_json(self) -> dict:
        return {"hashing": {**asdict(self.hashing), "tile": list(self.hashing.tile)}, "policy": asdict(self.policy),
                "seeds": self.seed_list(), "batch": self.batch, "threads": self.threads,
                "bootstrap_resamples": self.bootstrap, "bootstrap_seed": BOOTSTRAP_SEED}


# ---- inputs ---------------------------------------------------------------------------------------

def input_info(model: onnx.ModelProto) -> Tuple[str, List]:
    """Name and dims (ints, or None when symbolic) of the model's first real graph input."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise ValueError("the model has no graph input")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    return inputs[0].name, dims


def prepare_images(images: np.ndarray, model: onnx.ModelProto, mean=0.2860, std=0.3530,
                   background: float = 0) -> np.ndarray:
    """Raw images ([N,h,w] grey or [N,h,w,3], uint8 or float in [0, 1]) -> float32 NCHW for `model`.

    Fitted to the model's declared input size (`data.fit_to_input`: padded
    when smaller, resized bilinearly otherwise; left alone when the size is
    symbolic), given the channels the model declares (grey repeated to RGB,
    RGB to grey with the ITU-R 601 weights), then normalised with mean/std.
    """
    from .data import fit_to_input, normalize

    _, dims = input_info(model)
    if len(dims) != 4:
        raise ValueError(f"the model input is {len(dims)}-D; expected NCHW images")
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if dims[2] is not None and dims[3] is not None:
        x = fit_to_input(x, (dims[2], dims[3]), background)
    channels = dims[1]
    if channels == 3 and x.ndim == 3:
        x = np.repeat(x[..., None], 3, axis=-1)
    elif channels == 1 and x.ndim == 4:
        x = (x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.float32)
        if np.issubdtype(np.asarray(images).dtype, np.integer):
            x = x / 255.0
    y = normalize(x, mean, std)
    if channels is not None and y.shape[1] != channels:
        raise ValueError(f"the model wants {channels} input channels, the images have {y.shape[1]}")
    return y


# ---- the model copies ----------------------------------------------------------------------------

def add_stats_outputs(model: onnx.ModelProto) -> Tuple[onnx.ModelProto, List[Tuple[str, str]]]:
    """A copy of `model` whose main-graph HasteConv nodes have their `stats` output, as graph outputs.

    Returns the copy and [(node output 0, stats output name)] in node order.
    HasteConv nodes inside subgraphs are left alone (not measured).
    """
    from .rewrite.graphs import all_names, unique_name

    work = onnx.ModelProto()
    work.CopyFrom(model)
    taken = all_names(work)
    pairs = []
    for node in work.graph.node:
        if node.domain != DOMAIN or node.op_type != OP_TYPE:
            continue
        if len(node.output) > 1 and node.output[1]:
            name = node.output[1]
        else:
            name = unique_name(f"{node.name or node.output[0]}.stats", taken)
            del node.output[1:]
            node.output.append(name)
        if not any(o.name == name for o in work.graph.output):
            work.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, [len(STATS_FIELDS)]))
        pairs.append((node.output[0], name))
    return work, pairs


def count_haste(model: onnx.ModelProto) -> Tuple[int, int]:
    """(HasteConv nodes in the main graph, HasteConv nodes in subgraphs)."""
    from .rewrite.graphs import walk

    main = sum(1 for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE)
    total = sum(1 for _, n in walk(model.graph) if n.domain == DOMAIN and n.op_type == OP_TYPE)
    return main, total - main


def conv_layers(model: onnx.ModelProto) -> List[dict]:
    """Every Conv and HasteConv (traversal order) with its dense MACs per image from shapes."""
    from .rewrite.analysis import collect

    rows = []
    for site in collect(model):
        rows.append({"node": site.name, "output": site.node.output[0] if site.node.output else "", "op": site.op,
                     "input_shape": site.input_shape, "kernel": site.kernel, "stride": site.strides if site.kernel else None,
                     "group": site.group, "in_channels": site.in_channels, "out_channels": site.out_channels,
                     "macs": site.macs})
    return rows


# ---- running -------------------------------------------------------------------------------------

class Predictor:
    """An onnxruntime session (op library registered) that predicts classes in batches and sums `stats`."""

    def __init__(self, model: onnx.ModelProto, threads: Optional[int] = 2,
                 stats: Sequence[Tuple[str, str]] = ()):
        from .runtime import inference_session

        self.session = inference_session(model, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.logits_name = self.session.get_outputs()[0].name
        self.stats = list(stats)

    def run(self, x: np.ndarray) -> list:
        return self.session.run([self.logits_name] + [s for _, s in self.stats], {self.input_name: x})

    def predict(self, images: np.ndarray, batch: int) -> Tuple[np.ndarray, np.ndarray, float]:
        """(top-1 classes [N], summed stats [layers, 7], seconds)."""
        preds = np.empty(len(images), np.int64)
        totals = np.zeros((len(self.stats), len(STATS_FIELDS)), np.int64)
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            out = self.run(np.ascontiguousarray(images[i:i + batch]))
            logits = np.asarray(out[0])
            preds[i:i + batch] = logits.reshape(logits.shape[0], -1).argmax(axis=1)
            for k, s in enumerate(out[1:]):
                totals[k] += np.asarray(s, np.int64).reshape(-1)
        return preds, totals, time.perf_counter() - start


def measure_latency(first: Predictor, second: Predictor, x: np.ndarray, repeats: int = 20,
                    warmup: int = 3) -> Tuple[List[float], List[float]]:
    """Milliseconds per run of `x` for both predictors, measured alternately after `warmup` runs each."""
    for _ in range(warmup):
        first.run(x)
        second.run(x)
    a, b = [], []
    for _ in range(repeats):
        for pred, times in ((first, a), (second, b)):
            t0 = time.perf_counter()
            pred.run(x)
            times.append(1e3 * (time.perf_counter() - t0))
    return a, b


# ---- statistics ----------------------------------------------------------------------------------

def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> Tuple[float, float]:
    """95% Wilson score interval of a proportion (fractions, not percent)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 2000,
                     seed: int = BOOTSTRAP_SEED) -> Tuple[float, float]:
    """95% percentile interval of mean(b) - mean(a) for paired 0/1 outcomes, resampling images.

    Drawing N images with replacement only matters through how many fall in
    each of the four (a, b) cells, so it is drawn as a multinomial of the cell
    counts: the same distribution as resampling indices, without the N x R array.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n = len(a)
    if n == 0 or resamples < 1:
        return (float("nan"), float("nan"))
    only_b = int(np.sum(~a & b))
    only_a = int(np.sum(a & ~b))
    rest = n - only_a - only_b
    draws = np.random.default_rng(seed).multinomial(n, [only_b / n, only_a / n, rest / n], size=resamples)
    diffs = (draws[:, 0] - draws[:, 1]) / n
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return (float(lo), float(hi))


def spread(values: Sequence[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def accuracy_block(correct: np.ndarray) -> dict:
    n, k = len(correct), int(np.sum(correct))
    lo, hi = wilson_interval(k, n)
    return {"accuracy": k / n if n else None, "correct": k, "ci95": [lo, hi], "ci_method": "Wilson score"}


# ---- evaluation ----------------------------------------------------------------------------------

def versions() -> dict:
    import onnxruntime

    from . import __version__

    return {"haste_onnx": __version__, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__}


def static_by_layer(static_rows: List[dict]) -> Dict[str, dict]:
    """Static conv rows by output name and by node name: a HasteConv that absorbed a following Add or
    Relu (rewrite/fuse_activation.py) writes another output but keeps the Conv's node name."""
    return {**{("node", r["node"]): r for r in static_rows}, **{r["output"]: r for r in static_rows}}


def _layer_rows(pairs, totals: np.ndarray, static: Dict, n: int, model: Optional[onnx.ModelProto] = None) -> List[dict]:
    names = {node.output[0]: node.name for node in model.graph.node} if model is not None else {}
    rows = []
    for (out, _), t in zip(pairs, totals):
        s = static.get(out) or static.get(("node", names.get(out))) or {}
        c = dict(zip(STATS_FIELDS, (int(v) for v in t)))
        overhead = c["centering_ops"] + c["hashing_ops"] + c["merge_ops"]
        rows.append({
            "node": s.get("node", out), "input_shape": s.get("input_shape"), "kernel": s.get("kernel"),
            "static_macs": s.get("macs"),
            "dense_macs": c["dense_macs"] / n, "haste_macs": c["haste_macs"] / n, "overhead_ops": overhead / n,
            "centering_ops": c["centering_ops"] / n, "hashing_ops": c["hashing_ops"] / n, "merge_ops": c["merge_ops"] / n,
            "channel_ratio": c["merged_channels"] / c["channels"] if c["channels"] else None,
            "mac_reduction": 1 - c["haste_macs"] / c["dense_macs"] if c["dense_macs"] else None,
            "counters": c,
        })
    return rows


def _totals(layers: List[dict], original_macs: float) -> dict:
    dense = sum(r["dense_macs"] for r in layers)
    haste = sum(r["haste_macs"] for r in layers)
    over = sum(r["overhead_ops"] for r in layers)
    merged = sum(r["counters"]["merged_channels"] for r in layers)
    channels = sum(r["counters"]["channels"] for r in layers)
    saved = dense - haste
    return {
        "original_conv_macs": original_macs,
        "replaced_dense_macs": dense,
        "replaced_haste_macs": haste,
        "overhead_ops": over,
        "rewritten_conv_macs": original_macs - saved,
        "rewritten_conv_macs_with_overheads": original_macs - saved + over,
        "conv_mac_reduction": saved / original_macs if original_macs else None,
        "conv_mac_reduction_with_overheads": (saved - over) / original_macs if original_macs else None,
        "replaced_mac_reduction": saved / dense if dense else None,
        "replaced_mac_reduction_with_overheads": (saved - over) / dense if dense else None,
        "channel_ratio": merged / channels if channels else None,
    }


def evaluate(model: onnx.ModelProto, images: np.ndarray, labels: np.ndarray,
             options: Optional[EvalOptions] = None, progress=None) -> dict:
    """Evaluate original vs rewritten `model` on prepared `images` (float32 NCHW) and `labels`.

    See the module docstring for what is measured; numbers are fractions
    (accuracy 0.91, reduction 0.25) and MACs/ops are per image. `progress`,
    if given, is called with one line of text before each run.
    """
    from .check import uses_haste
    from .rewrite import rewrite_model, strip_model

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
            hashing, policy, allocation = ((replace(options.hashing, seed=seed), options.policy, None)
                                           if options.per_seed is None else options.per_seed(seed))
            rewritten, report = rewrite_model(model, hashing, policy)
            report_rows = report.layers
        measured, pairs = add_stats_outputs(rewritten)
        main, nested = count_haste(rewritten)
        say(f"rewritten model{'' if seed is None else f' (seed {seed})'}: {main + nested} HasteConv layers ...")
        pred, totals, seconds = Predictor(measured, options.threads, pairs).predict(images, options.batch)
        correct = pred == labels
        layers = _layer_rows(pairs, totals, static, n, rewritten)
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
            "totals": _totals(layers, original_macs),
            "seconds": seconds,
        }
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
