"""Conv MACs per layer and what one channel of a space costs (the MACs its removal saves)."""
from __future__ import annotations

from typing import Dict

import onnx

from ..rewrite.analysis import collect
from .spaces import ConvInput, Space


def conv_macs(model: onnx.ModelProto) -> Dict[str, int]:
    """Dense MACs per image of every Conv, by node (display) name."""
    return {site.name: int(site.macs or 0) for site in collect(model) if site.op == "Conv"}


def channel_cost(space: Space, macs: Dict[str, int], names) -> float:
    """MACs saved per image by removing one channel: 1/C of each producer's and of each Conv reader's MACs."""
    total = 0.0
    for p in space.producers:
        total += macs.get(names[id(p)], 0) / max(space.channels, 1)
    for c in space.consumers:
        if isinstance(c, ConvInput):
            total += macs.get(names[id(c.node)], 0) / max(space.channels, 1)
    return total
