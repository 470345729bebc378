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

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx

from .policy import Policy
from .rewrite.conv_to_haste import HashingOptions

DEFAULT_CANDIDATES = (6, 8, 10, 12, 14, 16)
DEFAULT_PROBE_IMAGES = 64
PROBE_PIXELS = DEFAULT_PROBE_IMAGES * 32 * 32  # larger inputs get fewer images: the probe's cost stays about the same
MIN_PROBE_IMAGES = 8
PROBE_SEED = 0
BLOCK = 4  # pixels per side of one block of the blocky noise
PROBE_NOISES = ("smooth", "blocky")
DARK_LEVEL_MAX = 0.6  # smooth noise: each image is dark below a level drawn from [0, this)
DEFAULT_PROBE_BUDGET = 13  # the budget rule's L: docs/ablations.md
BUDGET_DRAWS = 4  # draws of the budget L's hyperplanes whose mean disturbance is the budget
DRAW_SEED_STRIDE = 1_000_003  # draw k > 0 of a node with seed s uses seed s + k * this, far from the nodes' seeds


def synthetic_probe(model: onnx.ModelProto, count: int = DEFAULT_PROBE_IMAGES, mean: Sequence[float] = (0.2860,),
                    std: Sequence[float] = (0.3530,), seed: int = PROBE_SEED, noise: str = "smooth") -> np.ndarray:
    """`count` float32 NCHW images of noise for `model`'s first input (no data read).

    "smooth": per image and channel, Gaussian noise shaped to a 1/f^2 amplitude spectrum (smoother than
    natural images' 1/f: it ranks layers more like real images do, docs/ablations.md), scaled to [0, 1];
    values below a level drawn uniformly from [0, DARK_LEVEL_MAX) become 0 and the rest are stretched
    back to [0, 1] (images range from no dark regions to mostly dark). "blocky": uniform values on a grid
    of BLOCK x BLOCK pixels.
    """
    from .evaluate import input_info

    if noise not in PROBE_NOISES:
        raise ValueError(f"unknown probe noise {noise!r}; expected one of {', '.join(PROBE_NOISES)}")
    _, dims = input_info(model)
    if len(dims) != 4 or any(d is None for d in dims[1:]):
        shape = "x".join("?" if d is None else str(d) for d in dims)
        raise ValueError(f"the synthetic probe needs a model input of fixed shape NxCxHxW; this model's is {shape}")
    _, channels, height, width = dims
    rng = np.random.default_rng(seed)
    if noise == "blocky":
        coarse = rng.random((count, channels, -(-height // BLOCK), -(-width // BLOCK)), dtype=np.float32)
        images = np.repeat(np.repeat(coarse, BLOCK, axis=2), BLOCK, axis=3)[:, :, :height, :width]
    else:
        images = smooth_noise(rng, (count, channels, height, width))
    mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((images - mean) / std, dtype=np.float32)


def smooth_noise(rng: np.random.Generator, shape: Tuple[int, int, int, int]) -> np.ndarray:
    """Images in [0, 1] of 1/f^2 noise with dark regions (see `synthetic_probe`)."""
    n, c, h, w = shape
    freq = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    freq[0, 0] = 1.0  # the mean is rescaled away below
    spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / freq ** 2
    images = np.real(np.fft.ifft2(spectrum))
    low, high = images.min(axis=(2, 3), keepdims=True), images.max(axis=(2, 3), keepdims=True)
    images = (images - low) / np.maximum(high - low, 1e-12)
    level = rng.random((n, 1, 1, 1)) * DARK_LEVEL_MAX
    return (np.maximum(images - level, 0.0) / (1.0 - level)).astype(np.float32)


def default_mean_std(model: onnx.ModelProto) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Fashion-MNIST's normalisation for 1-channel inputs, ImageNet's for 3 channels, else 0.5 / 0.25."""
    from .evaluate import input_info

    dims = input_info(model)[1]
    channels = dims[1] if len(dims) > 1 else None
    from .zoo import FMNIST_MEAN_STD, IMAGENET_MEAN_STD

    if channels == 1:
        return FMNIST_MEAN_STD
    if channels == 3:
        return IMAGENET_MEAN_STD
    return (0.5,), (0.25,)


def default_probe_count(model: onnx.ModelProto) -> int:
    """DEFAULT_PROBE_IMAGES for inputs up to 32x32; fewer for larger ones (about PROBE_PIXELS pixels in all,
    at least MIN_PROBE_IMAGES): merging statistics come from the tiles, of which a large image has many."""
    from .evaluate import input_info

    dims = input_info(model)[1]
    if len(dims) != 4 or not dims[2] or not dims[3]:
        return DEFAULT_PROBE_IMAGES
    return int(min(DEFAULT_PROBE_IMAGES, max(MIN_PROBE_IMAGES, round(PROBE_PIXELS / (dims[2] * dims[3])))))


def probe_images(model: onnx.ModelProto, probe: str, count: Optional[int], mean=None, std=None):
    """(images, mean, std) for `probe`: "synthetic" (smooth noise, no data), "synthetic-blocky" (the first
    probe's noise, no data) or "fashion-mnist-train" (unlabelled images: calibration)."""
    from .model_io import InputError

    if len({i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}) > 1:
        raise InputError("the probe feeds one image input; this model has several inputs")
    if count is None:
        count = default_probe_count(model)
    if mean is None or std is None:
        mean, std = default_mean_std(model)
    if probe in ("synthetic", "synthetic-blocky"):
        noise = "blocky" if probe == "synthetic-blocky" else "smooth"
        try:
            return synthetic_probe(model, count, mean, std, noise=noise), mean, std
        except ValueError as err:
            raise InputError(str(err)) from err
    if probe == "fashion-mnist-train":
        from . import data as hdata
        from .evaluate import prepare_images

        try:
            raw, _ = hdata.load_fashion_mnist("train")
        except hdata.DatasetNotFoundError as err:
            raise InputError(f"--probe fashion-mnist-train: Fashion-MNIST's training split not found; get it with "
                             f"`{hdata.FETCH_COMMAND}`") from err
        return prepare_images(raw[:count], model, mean, std), mean, std
    raise InputError(f"unknown probe {probe!r}")


def output_disturbance(reference: np.ndarray, output: np.ndarray) -> float:
    """Mean KL(softmax(reference) || softmax(output)) for [N, K] outputs, else relative squared error."""
    a, b = np.asarray(reference, np.float64), np.asarray(output, np.float64)
    if a.ndim == 2 and a.shape[1] > 1:
        la = a - a.max(axis=1, keepdims=True)
        lb = b - b.max(axis=1, keepdims=True)
        la -= np.log(np.exp(la).sum(axis=1, keepdims=True))
        lb -= np.log(np.exp(lb).sum(axis=1, keepdims=True))
        return float(np.mean(np.sum(np.exp(la) * (la - lb), axis=1)))
    scale = float(np.sum(a * a))
    return float(np.sum((a - b) ** 2) / scale) if scale > 0 else 0.0


@dataclass
class LayerProbe:
    """What rewriting one layer alone at each candidate L did to the probe."""

    node: str
    dense_macs: float  # per image
    # (L, tile) -> (disturbance, net MACs saved per image)
    choices: Dict[Tuple[int, Tuple[int, int]], Tuple[float, float]] = field(default_factory=dict)
    # (L, tile) -> the disturbances of other draws of its hyperplanes (`other_draws`)
    other_draws: Dict[Tuple[int, Tuple[int, int]], List[float]] = field(default_factory=dict)

    def mean_disturbance(self, choice) -> float:
        """The disturbance of `choice` averaged over the seed's own draw and the other draws."""
        values = [self.choices[choice][0]] + list(self.other_draws.get(choice, ()))
        return float(sum(values) / len(values))


def choice_text(choice) -> str:
    count, (th, tw) = choice
    return f"L={count} tile={th}x{tw}"


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

    def overrides(self) -> Tuple[Tuple[str, int], ...]:
        """`HashingOptions.layer_hyperplanes` pairs (exact names)."""
        return tuple((literal_pattern(n), c[0]) for n, c in self.layers.items() if c is not None)

    def tile_overrides(self) -> Tuple[Tuple[str, Tuple[int, int]], ...]:
        """`HashingOptions.layer_tiles` pairs (exact names)."""
        return tuple((literal_pattern(n), tuple(c[1])) for n, c in self.layers.items() if c is not None)

    def dense(self) -> List[str]:
        """The layers left dense (`Policy.probe_dense`)."""
        return [n for n, L in self.layers.items() if L is None]

    def apply(self, options: HashingOptions, policy: Policy) -> Tuple[HashingOptions, Policy]:
        """The choice as per-layer overrides; the caller's own `layer_hyperplanes`/`layer_tiles` come first, so
        a layer named there keeps what it was given (and is replaced even where the probe would leave it dense)."""
        import fnmatch

        pinned = {n for n in self.layers for pattern, _ in tuple(options.layer_hyperplanes) + tuple(options.layer_tiles)
                  if fnmatch.fnmatchcase(n, pattern)}
        return (replace(options, layer_hyperplanes=tuple(options.layer_hyperplanes) + self.overrides(),
                        layer_tiles=tuple(options.layer_tiles) + self.tile_overrides()),
                replace(policy, probe_dense=list(policy.probe_dense) + [n for n in self.dense() if n not in pinned]))

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
            goal = f"(target {100 * doc['target_cut']:.1f}%)"
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
                   doc.get("budget_disturbance"), doc.get("uniform_cut"), doc.get("budget_draws"))

    def to_json(self) -> dict:
        return {"probe": self.probe, "rule": "target" if self.target is not None else "budget",
                "target_cut": self.target, "budget_hyperplanes": self.budget_hyperplanes,
                "budget_disturbance": self.budget, "budget_draws": self.budget_draws, "uniform_cut": self.uniform_cut,
                "estimated_cut": self.estimated_cut,
                "estimated_disturbance": self.estimated_disturbance, "conv_macs": self.conv_macs,
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


def literal_pattern(name: str) -> str:
    """A shell pattern that matches exactly `name` (fnmatch has no escape character)."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in name)


def probe_layers(model: onnx.ModelProto, images: np.ndarray, options: HashingOptions, policy: Policy,
                 candidates: Sequence[int] = DEFAULT_CANDIDATES, threads: Optional[int] = 2,
                 progress: Optional[Callable[[str], None]] = None,
                 tiles: Optional[Sequence[Tuple[int, int]]] = None,
                 draws: Optional[Tuple[Tuple[int, Tuple[int, int]], int]] = None) -> Tuple[List[LayerProbe], float]:
    """Per replaced layer and candidate (L, tile): (disturbance, net MACs saved per image); and the conv MACs.

    `tiles` defaults to `options.tile` alone. `draws` = ((L, tile), K): that choice is also run with K - 1
    other draws of its hyperplanes (`LayerProbe.other_draws`).
    """
    from .evaluate import conv_layers
    from .rewrite import rewrite_model

    say = progress or (lambda text: None)
    _, report = rewrite_model(model, options, policy)
    names = [r.node for r in report.layers if r.status == "replaced"]
    conv_macs = float(sum(r["macs"] for r in conv_layers(model) if r["macs"] is not None))
    from .runtime import inference_session

    session = inference_session(model, threads=threads)
    batch = _fixed_batch(model) or len(images)
    reference = np.concatenate([session.run([session.get_outputs()[0].name],
                                            {session.get_inputs()[0].name: images[i:i + batch]})[0]
                                for i in range(0, len(images), batch)])
    del session
    tiles = [tuple(t) for t in (tiles or [options.tile])]
    probes = []
    for i, name in enumerate(names, 1):
        probe = LayerProbe(name, 0.0)
        say(f"probing layer {i}/{len(names)} ({name}) at L={','.join(map(str, candidates))}"
            + (f", tiles {','.join('x'.join(map(str, t)) for t in tiles)}" if len(tiles) > 1 else "") + " ...")
        for tile in tiles:
            one = replace(options, hyperplanes=candidates[0], layer_hyperplanes=(), tile=tile, layer_tiles=())
            rewritten, _ = rewrite_model(model, one, replace(policy, include=[literal_pattern(name)]))
            layer = _LayerRun(rewritten, name, threads)
            for count in candidates:
                disturbance, saved, probe.dense_macs = layer.measure(images, batch, reference, count, layer.seed,
                                                                     options.sparsity)
                probe.choices[(count, tile)] = (disturbance, saved)
                if draws is not None and draws[1] > 1 and draws[0] == (count, tile):
                    probe.other_draws[(count, tile)] = [
                        layer.measure(images, batch, reference, count, layer.seed + k * DRAW_SEED_STRIDE,
                                      options.sparsity)[0] for k in range(1, draws[1])]
        probes.append(probe)
    return probes, conv_macs


class _LayerRun:
    """A session of `model` in which the HasteConv node `name` takes its hyperplanes as an input, so that one
    session serves every candidate L (the op takes L from that input's shape); its `stats` are an output."""

    def __init__(self, model: onnx.ModelProto, name: str, threads: Optional[int]):
        from .evaluate import Predictor, add_stats_outputs
        from .op.geometry import DOMAIN, OP_TYPE

        measured, pairs = add_stats_outputs(model)
        node = next(n for n in measured.graph.node if n.name == name and n.domain == DOMAIN and n.op_type == OP_TYPE)
        self.seed = next(a.i for a in node.attribute if a.name == "seed")
        self.planes_name = node.input[3]
        graph = measured.graph
        init = next(t for t in graph.initializer if t.name == self.planes_name)
        self.patch = int(init.dims[1])
        graph.initializer.remove(init)
        graph.input.append(onnx.helper.make_tensor_value_info(self.planes_name, onnx.TensorProto.FLOAT,
                                                              ["L", self.patch]))
        self.stats = next(k for k, (out, _) in enumerate(pairs) if out == node.output[0])
        self.predictor = Predictor(measured, threads, pairs)

    def measure(self, images: np.ndarray, batch: int, reference: np.ndarray, count: int, seed: int,
                sparsity: float) -> Tuple[float, float, float]:
        """(disturbance of the output, net MACs saved per image, dense MACs per image) with the hyperplanes
        `draw_hyperplanes(count, patch, sparsity, seed)`."""
        from .op.hyperplanes import draw_hyperplanes
        from .op.reference import STATS_FIELDS

        planes = draw_hyperplanes(count, self.patch, sparsity, seed)
        runs = [self.run(images[i:i + batch], planes) for i in range(0, len(images), batch)]
        c = dict(zip(STATS_FIELDS, (int(v) for v in sum(r[1] for r in runs))))
        overhead = c["centering_ops"] + c["hashing_ops"] + c["merge_ops"]
        n = len(images)
        saved = (c["dense_macs"] - c["haste_macs"] - overhead) / n
        return output_disturbance(reference, np.concatenate([r[0] for r in runs])), saved, c["dense_macs"] / n

    def run(self, x: np.ndarray, planes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(output 0, this layer's stats) for images `x` with these hyperplanes."""
        p = self.predictor
        out = p.session.run([p.logits_name, p.stats[self.stats][1]], {p.input_name: x, self.planes_name: planes})
        return out[0], np.asarray(out[1], np.int64).reshape(-1)


def _fixed_batch(model: onnx.ModelProto) -> Optional[int]:
    """The model input's batch size when it is fixed (the probe then runs in batches of it)."""
    from .evaluate import input_info

    dims = input_info(model)[1]
    return dims[0] if dims and dims[0] else None


def _options(probes: List[LayerProbe], step: float):
    """Per layer its choices that save something: (choice, disturbance, saving, saving in whole steps)."""
    return [[(c, d, s, int(math.floor(s / step + 1e-6))) for c, (d, s) in sorted(p.choices.items()) if s > 0]
            for p in probes]


def _knapsack(options, cap: int):
    """best[b]: the least summed disturbance with min(saving, cap) == b steps; back[i][b]: (previous b, choice
    index) of layer i on the way there, None when layer i stays dense."""
    inf = float("inf")
    best = [0.0] + [inf] * cap
    back = []
    for opts in options:
        new, how = best[:], [None] * (cap + 1)
        for b, dist in enumerate(best):
            if dist == inf:
                continue
            for k, (_, d, _, steps) in enumerate(opts):
                t = min(cap, b + steps)
                if dist + d < new[t]:
                    new[t], how[t] = dist + d, (b, k)
        back.append(how)
        best = new
    return best, back


def _walk_back(probes, options, back, b: int) -> Dict[str, Optional[tuple]]:
    choice = {}
    for p, opts, how in zip(reversed(probes), reversed(options), reversed(back)):
        if how[b] is None:
            choice[p.node] = None
        else:
            b, k = how[b]
            choice[p.node] = opts[k][0]
    return {p.node: choice[p.node] for p in probes}


def _totals(probes, choice, conv_macs):
    saved = sum(p.choices[choice[p.node]][1] for p in probes if choice[p.node] is not None)
    disturbance = sum(p.choices[choice[p.node]][0] for p in probes if choice[p.node] is not None)
    return choice, saved / conv_macs, disturbance


def choose(probes: List[LayerProbe], conv_macs: float, target: float,
           resolution: int = 4000) -> Tuple[Dict[str, Optional[tuple]], float, float]:
    """Per layer None (dense) or one of its choices: the least summed disturbance whose summed saving reaches target * conv_macs.

    A multiple-choice knapsack solved exactly by dynamic programming over the
    saving in steps of conv_macs / resolution (each choice's saving rounded
    down, so the real sum never falls short). Choices that save nothing are
    never better than dense. Returns (choice, saving / conv_macs, summed
    disturbance); when the target is out of reach, every layer takes its
    largest saving.
    """
    need = int(math.ceil(target * resolution - 1e-9))
    options = _options(probes, conv_macs / resolution)
    reachable = sum(max((o[3] for o in opts), default=0) for opts in options)
    if reachable < need:
        choice = {p.node: (max(opts, key=lambda o: o[2])[0] if opts else None) for p, opts in zip(probes, options)}
        return _totals(probes, choice, conv_macs)
    _, back = _knapsack(options, need)
    return _totals(probes, _walk_back(probes, options, back, need), conv_macs)


def choose_within(probes: List[LayerProbe], conv_macs: float, budget: float,
                  resolution: int = 4000) -> Tuple[Dict[str, Optional[tuple]], float, float]:
    """Per layer None (dense) or one of its choices: the largest summed saving whose summed disturbance is at most `budget`.

    The same knapsack as `choose`, over every reachable saving (in steps of
    conv_macs / resolution, rounded down); among the savings within the
    budget the largest wins. Returns (choice, saving / conv_macs, summed
    disturbance).
    """
    options = _options(probes, conv_macs / resolution)
    reachable = sum(max((o[3] for o in opts), default=0) for opts in options)
    best, back = _knapsack(options, reachable)
    slack = 1e-9 * max(abs(budget), 1e-30)  # sums in another order than the budget's
    b = max(b for b, dist in enumerate(best) if dist <= budget + slack)  # b == 0 (all dense) always fits
    return _totals(probes, _walk_back(probes, options, back, b), conv_macs)


def allocate(model: onnx.ModelProto, options: HashingOptions, policy: Policy, target: Optional[float] = None,
             images: Optional[np.ndarray] = None, probe: str = "synthetic",
             candidates: Sequence[int] = DEFAULT_CANDIDATES, threads: Optional[int] = 2,
             mean: Sequence[float] = (0.2860,), std: Sequence[float] = (0.3530,),
             progress: Optional[Callable[[str], None]] = None,
             tiles: Optional[Sequence[Tuple[int, int]]] = None,
             budget_hyperplanes: Optional[int] = None, budget_draws: int = BUDGET_DRAWS) -> Allocation:
    """Choose L (and, with several `tiles`, the tile) per layer (see the module docstring): with `target`, the
    target rule; else the budget rule for one L = `budget_hyperplanes` (default DEFAULT_PROBE_BUDGET) in
    every layer at `options.tile`, its disturbance averaged over `budget_draws` draws of its hyperplanes
    (1: the seed's own only). `images` replace the synthetic probe when given."""
    if target is not None and not 0.0 < target < 1.0:
        raise ValueError(f"the target cut must be in (0, 1), got {target}")
    if not candidates or any(not 1 <= c <= 64 for c in candidates):
        raise ValueError("candidate hyperplane counts must be in 1..64")
    if budget_draws < 1:
        raise ValueError(f"the budget's draws must be at least 1, got {budget_draws}")
    tiles = [tuple(t) for t in (tiles or [options.tile])]
    if target is None:
        budget_hyperplanes = budget_hyperplanes or DEFAULT_PROBE_BUDGET
        uniform = (budget_hyperplanes, tuple(options.tile))
        candidates = sorted(set(candidates) | {budget_hyperplanes})
        tiles = tiles if uniform[1] in tiles else tiles + [uniform[1]]
    if images is None:
        images = synthetic_probe(model, mean=mean, std=std)
    probes, conv_macs = probe_layers(model, np.ascontiguousarray(images, np.float32), options, policy,
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
