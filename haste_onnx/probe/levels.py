"""The plans of a steerable model's levels (docs/steerable.md), from one probe.

Level 1 is the plan the probe chose (what `rewrite` writes); level 0 the
original. A level x in between is a measured point of the same trade-off:
among the layers level 1 replaces, each layer's candidate (L and tile) or
dense, the least summed disturbance whose summed saving reaches x times
level 1's saving (time saved under the time objective, conv MACs under the
MAC objective): `knapsack.choose_share`, solved once per level on the probe's
measurements, so the probe runs once. Without a probe (one L for every layer)
nothing ranks the layers: only levels 0 and 1 are offered.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

from ..errors import UsageError
from ..plan import Plan
from .allocation import Allocation, time_value
from .knapsack import choose_share, mac_saving, totals


def level_plans(plan: Plan, allocation: Optional[Allocation], levels: Sequence[float]) -> List[Tuple[float, Plan]]:
    """(level, plan) for each of `levels` above 0 (ascending, in (0, 1]); level 1 is `plan` itself."""
    wanted = [level for level in levels if level > 0]
    between = [level for level in wanted if level < 1]
    if between and not isinstance(allocation, Allocation):
        raise UsageError("levels between 0 and 1 need the probe's ranking of the layers; with one L for every layer "
                         "(-L, --no-probe, --plan) --levels may only be 0,1")
    plans = []
    for level in wanted:
        plans.append((level, plan if level >= 1 else _share_plan(plan, allocation, level)))
    return plans


def _share_plan(plan: Plan, allocation: Allocation, share: float) -> Plan:
    chosen = {n for n, c in allocation.layers.items() if c is not None}
    probes = [p for p in allocation.probes if p.node in chosen]
    value = time_value if allocation.objective == "time" else mac_saving
    full = sum(value(p, allocation.layers[p.node]) or 0.0 for p in probes)
    layers = {n: None for n in allocation.layers}
    if probes and full > 0:
        layers.update(choose_share(probes, share, full, value=value))
    _, cut, disturbance = totals(probes, {p.node: layers[p.node] for p in probes}, allocation.conv_macs)
    level = replace(allocation, layers=layers, estimated_cut=cut, estimated_disturbance=disturbance,
                    fidelity=None, search=[], speed=None)
    return level.apply_to(plan)
