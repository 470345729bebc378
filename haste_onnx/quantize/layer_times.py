"""Each weighted layer's kernel time in a whole model, from onnxruntime's profiler.

onnxruntime renames what it fuses: a float Conv runs as FusedConv or an NCHWc Conv named after its output
(`measure.profile.match_profile` finds those), an int8 one as QLinearConv named `<node>_token_<k>` (or
QGemm / MatMulInteger with a suffix). Times are means per run of the last `runs` runs, one session per model.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import onnx

FUSED_SUFFIX = re.compile(r"(_token_\d+|_quant|_nchwc)+$")


def profile_nodes(model: onnx.ModelProto, feed: dict, threads: int, runs: int, warmup: int = 2) -> dict:
    """{"nodes": {node: {"op", "ms" (median over the runs: a busy machine's interruptions do not count),
    "inputs"}}} of `runs` profiled runs after `warmup`."""
    from ..measure.profile import parse_profile
    from ..measure.sessions import bench_session

    with tempfile.TemporaryDirectory(prefix="haste-int8-") as tmp:
        session = bench_session(model, threads, os.path.join(tmp, "profile"))
        for _ in range(warmup + runs):
            session.run(None, feed)
        path = session.end_profiling()
        parsed = parse_profile(path, runs)
        samples: Dict[str, List[float]] = {}
        for event in json.loads(Path(path).read_text()):
            name = event.get("name", "")
            if event.get("cat") == "Node" and name.endswith("_kernel_time"):
                samples.setdefault(name[:-len("_kernel_time")], []).append(event["dur"] / 1e3)
    for name, row in parsed["nodes"].items():
        if samples.get(name):
            row["ms"] = float(np.median(samples[name][-runs:]))
    return parsed


def layer_times(model: onnx.ModelProto, layers: List[str], feed: dict, threads: int, runs: int = 20) -> Dict[str, Optional[float]]:
    """{layer name: ms per run of the kernel it runs as (None: not found in the profile)}."""
    from ..measure.profile import _conv_nodes, match_profile

    prof = profile_nodes(model, feed, threads, runs)["nodes"]
    times: Dict[str, Optional[float]] = {name: None for name in layers}
    convs = _conv_nodes(model)
    matched, _ = match_profile(model, prof)  # float convs, by their fused names
    for index, hit in matched.items():
        if convs[index].name in times:
            times[convs[index].name] = hit["ms"]
    for pname, p in prof.items():  # int8 kernels keep the node's name with a suffix
        base = FUSED_SUFFIX.sub("", pname)
        if base in times and times[base] is None and p["op"] not in ("QuantizeLinear", "DequantizeLinear"):
            times[base] = p["ms"]
    return times


def first_batch(images: np.ndarray, batch: int) -> np.ndarray:
    from ..measure.timing import batch_of

    return batch_of(images, batch)[0]
