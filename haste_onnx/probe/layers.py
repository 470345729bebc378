"""Each layer rewritten alone at every candidate (L, tile) and run on the probe: disturbance and MACs saved."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx

from ..op.geometry import DEFAULT_TILE
from ..plan import Plan
from .disturbance import output_disturbance

BUDGET_DRAWS = 4  # draws of the budget L's hyperplanes whose mean disturbance is the budget
DRAW_SEED_STRIDE = 1_000_003  # draw k > 0 of a node with seed s uses seed s + k * this, far from the nodes' seeds


@dataclass
class LayerProbe:
    """What rewriting one layer alone at each candidate L did to the probe."""

    node: str
    dense_macs: float  # per image
    # (L, tile) -> (disturbance, net MACs saved per image)
    choices: Dict[Tuple[int, Tuple[int, int]], Tuple[float, float]] = field(default_factory=dict)
    # (L, tile) -> the disturbances of other draws of its hyperplanes (`other_draws`)
    other_draws: Dict[Tuple[int, Tuple[int, int]], List[float]] = field(default_factory=dict)
    # (L, tile) -> the HasteConv piece's timing (`layer_time.LayerPiece.time`), when the probe timed layers
    times: Dict[Tuple[int, Tuple[int, int]], dict] = field(default_factory=dict)
    conv_ms: List[float] = field(default_factory=list)  # the Conv piece's median ms, once per timed pair

    def dense_ms(self) -> Optional[float]:
        return float(np.median(self.conv_ms)) if self.conv_ms else None

    def time_saved(self, choice) -> Optional[float]:
        """Milliseconds per timed batch that `choice` saves against the Conv; None when not timed."""
        timing = self.times.get(choice)
        return None if timing is None or not self.conv_ms else self.dense_ms() - timing["ms"]

    def mean_disturbance(self, choice) -> float:
        """The disturbance of `choice` averaged over the seed's own draw and the other draws."""
        values = [self.choices[choice][0]] + list(self.other_draws.get(choice, ()))
        return float(sum(values) / len(values))


def choice_text(choice) -> str:
    count, (th, tw) = choice
    return f"L={count} tile={th}x{tw}"


def probe_layers(model: onnx.ModelProto, images: np.ndarray, plan: Plan, candidates: Sequence[int],
                 threads: Optional[int] = 2, progress: Optional[Callable[[str], None]] = None,
                 tiles: Sequence[Tuple[int, int]] = (DEFAULT_TILE,),
                 draws: Optional[Tuple[Tuple[int, Tuple[int, int]], int]] = None,
                 timing=None) -> Tuple[List[LayerProbe], float]:
    """Per layer the plan replaces, and candidate (L, tile): (disturbance, net MACs saved per image); and the
    conv MACs per image.

    Each layer is rewritten alone (`Plan.only`, its other settings as planned). `draws` = ((L, tile), K):
    that choice is also run with K - 1 other draws of its hyperplanes (`LayerProbe.other_draws`). With
    `timing` (a `layer_time.TimingContext`) every candidate is also timed against the Conv
    (`LayerProbe.times`, `conv_ms`).
    """
    from ..measure.conv_work import conv_macs_per_image
    from ..model_inputs import fixed_batch
    from ..rewrite import rewrite_model
    from ..runtime import inference_session

    say = progress or (lambda text: None)
    layers = plan.replaced()
    conv_macs = float(conv_macs_per_image(model))
    session = inference_session(model, threads=threads)
    batch = fixed_batch(model) or len(images)
    reference = np.concatenate([session.run([session.get_outputs()[0].name],
                                            {session.get_inputs()[0].name: images[i:i + batch]})[0]
                                for i in range(0, len(images), batch)])
    del session
    tiles = [tuple(t) for t in tiles]
    probes = []
    for i, layer in enumerate(layers, 1):
        probe = LayerProbe(layer.site, 0.0)
        say(f"probing layer {i}/{len(layers)} ({layer.site}) at L={','.join(map(str, candidates))}"
            + (f", tiles {','.join('x'.join(map(str, t)) for t in tiles)}" if len(tiles) > 1 else "") + " ...")
        for tile in tiles:
            one = plan.only(layer.site, replace(layer.settings, hyperplanes=candidates[0], tile=tile))
            rewritten, _ = rewrite_model(model, one)
            run = _LayerRun(rewritten, layer.site, threads)
            piece = None
            if timing is not None:
                from .layer_time import LayerPiece

                piece = LayerPiece(model, rewritten, run.node, images, timing)
            for count in candidates:
                disturbance, saved, probe.dense_macs = run.measure(images, batch, reference, count, run.seed,
                                                                   layer.settings.sparsity)
                probe.choices[(count, tile)] = (disturbance, saved)
                if piece is not None:
                    from ..op.hyperplanes import draw_hyperplanes

                    conv, haste = piece.time(draw_hyperplanes(count, run.patch, layer.settings.sparsity, run.seed))
                    probe.conv_ms.append(conv["ms"])
                    probe.times[(count, tile)] = haste
                if draws is not None and draws[1] > 1 and draws[0] == (count, tile):
                    probe.other_draws[(count, tile)] = [
                        run.measure(images, batch, reference, count, run.seed + k * DRAW_SEED_STRIDE,
                                    layer.settings.sparsity)[0] for k in range(1, draws[1])]
        probes.append(probe)
    return probes, conv_macs


class _LayerRun:
    """A session of a one-layer model (`Plan.only`) in which its HasteConv node takes its hyperplanes as an
    input, so that one session serves every candidate L (the op takes L from that input's shape); its `stats`
    are an output."""

    def __init__(self, model: onnx.ModelProto, site: str, threads: Optional[int]):
        from ..measure.instrument import add_stats_outputs
        from ..measure.predictor import Predictor
        from ..plan.build import site_keys
        from ..rewrite.analysis import collect, is_haste

        sites = collect(model)
        output = dict(zip(site_keys(sites), sites))[site].node.output[0]
        measured, pairs = add_stats_outputs(model)
        node = next((n for n in measured.graph.node if is_haste(n) and n.output[0] == output), None)
        if node is None:
            raise ValueError(f"the probe measures layers of the main graph only; {site} is inside a subgraph")
        self.node = next(n for n in model.graph.node if is_haste(n) and n.output[0] == output)
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
        from ..op.hyperplanes import draw_hyperplanes
        from ..op.stats import Counters

        planes = draw_hyperplanes(count, self.patch, sparsity, seed)
        runs = [self.run(images[i:i + batch], planes) for i in range(0, len(images), batch)]
        c = Counters.from_array(sum(r[1] for r in runs))
        n = len(images)
        disturbance = output_disturbance(reference, np.concatenate([r[0] for r in runs]))
        return disturbance, c.net_saved_macs / n, c.dense_macs / n

    def run(self, x: np.ndarray, planes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(output 0, this layer's stats) for images `x` with these hyperplanes."""
        p = self.predictor
        out = p.session.run([p.logits_name, p.stats[self.stats][1]], {p.input_name: x, self.planes_name: planes})
        return out[0], np.asarray(out[1], np.int64).reshape(-1)
