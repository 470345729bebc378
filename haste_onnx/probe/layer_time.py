"""Each layer timed on this machine, as its Conv and as HasteConv at each candidate, in its real context.

For one layer, the one-layer rewrite (`Plan.only`) names what the HasteConv
replaced: its input X, the residual Z it fused (if any) and its output Y (the
Conv's, or that of the Add/Relu/Clip/BatchNormalization fused into it). Both
the original and the rewritten model are cut to that piece (X, Z -> Y,
`onnx.utils.Extractor`), so the Conv side runs with what onnxruntime fuses
into its Conv and the HasteConv side with what the rewriter fused into it. X
and Z are the layer's real inputs: the original model run on the first
`batch` probe images. Both pieces run in sessions like the ones benchmarks
time (all graph optimisations, `threads` intra-op threads), alternating after
a warm-up; the clock is process CPU time on one thread, else the wall clock.

In the whole model, replacing a Conv also adds the layout changes around it
that the piece's Conv pays at its own borders, so the difference is about the
same; the rewrite's final whole-model check (`planner`) catches the rest.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import onnx

from ..measure.sessions import bench_session
from ..measure.timing import pair_ratios, time_alternating


@dataclass(frozen=True)
class TimingContext:
    """How layers and models are timed: the batch, the threads, and how many runs."""

    batch: int = 1
    threads: int = 1
    repeats: int = 15
    warmup: int = 3

    def clock(self):
        return time.process_time if self.threads == 1 else time.perf_counter

    def to_json(self) -> dict:
        return {"batch": self.batch, "threads": self.threads, "repeats": self.repeats, "warmup": self.warmup,
                "clock": "process CPU time" if self.threads == 1 else "wall (perf_counter)"}


def _piece(model: onnx.ModelProto, feed: Dict[str, np.ndarray],
           outputs: Dict[str, np.ndarray]) -> onnx.ModelProto:
    """The part of `model` from the tensors of `feed` to those of `outputs` (their types from the arrays)."""
    from onnx.utils import Extractor

    from ..op.schema import register_schema

    register_schema()  # shape inference of HasteConv inside the extractor
    work = onnx.ModelProto()
    work.CopyFrom(model)
    known = {v.name for v in list(work.graph.value_info) + list(work.graph.input) + list(work.graph.output)}
    for name, value in {**feed, **outputs}.items():
        if name not in known:
            work.graph.value_info.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                            list(value.shape)))
    return Extractor(work).extract_model(list(feed), list(outputs))


class LayerPiece:
    """One layer of the model, as its Conv piece and as the HasteConv piece of a one-layer rewrite whose
    hyperplanes are an input (so one session serves every L of that tile)."""

    def __init__(self, original: onnx.ModelProto, rewritten: onnx.ModelProto, node: onnx.NodeProto,
                 images: np.ndarray, context: TimingContext):
        self.context = context
        x, planes = node.input[0], node.input[3]
        z = node.input[4] if len(node.input) > 4 and node.input[4] else None
        self.boundary = [x] + ([z] if z else [])
        y = node.output[0]
        captured = self._capture(original, images[:context.batch], self.boundary + [y])
        self.feed, out = {k: captured[k] for k in self.boundary}, {y: captured[y]}
        self.conv_piece = _piece(original, self.feed, out)
        haste = _piece(rewritten, self.feed, out)
        init = next(t for t in haste.graph.initializer if t.name == planes)
        self.patch = int(init.dims[1])
        haste.graph.initializer.remove(init)
        haste.graph.input.append(onnx.helper.make_tensor_value_info(planes, onnx.TensorProto.FLOAT,
                                                                    ["L", self.patch]))
        self.planes_name = planes
        self.haste_piece = haste
        self._conv = bench_session(self.conv_piece, context.threads)
        self._haste = bench_session(self.haste_piece, context.threads)

    def _capture(self, original: onnx.ModelProto, batch: np.ndarray, names) -> Dict[str, np.ndarray]:
        """The tensors `names` (the layer's X, Z and Y) on `batch`: the original model run with them as outputs."""
        from ..runtime import inference_session

        work = onnx.ModelProto()
        work.CopyFrom(original)
        present = {o.name for o in work.graph.output}
        for name in names:
            if name not in present:
                work.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        session = inference_session(work, threads=self.context.threads)
        values = session.run(list(names), {session.get_inputs()[0].name: batch})
        return {name: np.ascontiguousarray(v) for name, v in zip(names, values)}

    def time(self, planes: np.ndarray) -> Tuple[dict, dict]:
        """(Conv piece, HasteConv piece with these hyperplanes): median ms per run and the per-pair ratios
        Conv / HasteConv (above 1: HasteConv is faster)."""
        c = self.context
        conv_ms, haste_ms = time_alternating(self._conv, self._haste, self.feed, c.repeats, c.warmup, c.clock(),
                                             second_feed={**self.feed, self.planes_name: planes})
        return ({"ms": float(np.median(conv_ms))},
                {"ms": float(np.median(haste_ms)), "ratio": pair_ratios(conv_ms, haste_ms)})


def measurably_faster(timing: Optional[dict]) -> bool:
    """HasteConv beat the Conv in at least three of four alternating pairs (lower quartile of the ratios
    above 1)."""
    return bool(timing) and timing["ratio"]["p25"] > 1.0
