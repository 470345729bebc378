"""The probe's two rules as multiple-choice knapsacks, solved exactly by dynamic programming."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

from .layers import LayerProbe


def mac_saving(probe: LayerProbe, choice) -> float:
    """The default value of a choice: the conv MACs it saves per image, overheads counted."""
    return probe.choices[choice][1]


def _options(probes: List[LayerProbe], step: float, value: Callable = mac_saving):
    """Per layer its choices that save something: (choice, disturbance, saving, saving in whole steps); the
    saving is `value(probe, choice)` (None: not a choice)."""
    options = []
    for p in probes:
        opts = []
        for c, (d, _) in sorted(p.choices.items()):
            s = value(p, c)
            if s is not None and s > 0:
                opts.append((c, d, s, int(math.floor(s / step + 1e-6))))
        options.append(opts)
    return options


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


def totals(probes, choice, conv_macs):
    """(choice, MACs saved / conv_macs, summed disturbance) of a choice per layer."""
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
        return totals(probes, choice, conv_macs)
    _, back = _knapsack(options, need)
    return totals(probes, _walk_back(probes, options, back, need), conv_macs)


def choose_within(probes: List[LayerProbe], conv_macs: float, budget: float, resolution: int = 4000,
                  value: Callable = mac_saving,
                  total: Optional[float] = None) -> Tuple[Dict[str, Optional[tuple]], float, float]:
    """Per layer None (dense) or one of its choices: the largest summed saving whose summed disturbance is at most
    `budget`.

    The same knapsack as `choose`, over every reachable saving (in steps of
    total / resolution, rounded down; `total` defaults to conv_macs); among the
    savings within the budget the largest wins. The saving is `value(probe,
    choice)`: the MACs saved by default, or the time saved (the probe's time
    objective). Returns (choice, MACs saved / conv_macs, summed disturbance).
    """
    options = _options(probes, (total or conv_macs) / resolution, value)
    reachable = sum(max((o[3] for o in opts), default=0) for opts in options)
    best, back = _knapsack(options, reachable)
    slack = 1e-9 * max(abs(budget), 1e-30)  # sums in another order than the budget's
    b = max(b for b, dist in enumerate(best) if dist <= budget + slack)  # b == 0 (all dense) always fits
    return totals(probes, _walk_back(probes, options, back, b), conv_macs)



def choose_share(probes: List[LayerProbe], share: float, full: float, resolution: int = 4000,
                 value: Callable = mac_saving) -> Dict[str, Optional[tuple]]:
    """Per layer None (dense) or one of its choices: the least summed disturbance whose summed saving (`value`)
    reaches `share` of `full` (a steerable model's level: a share of the top level's saving `full`). The same
    knapsack as `choose`, over `value`; savings rounded down, so the real sum never falls short."""
    step = full / resolution if full > 0 else 1.0
    options = _options(probes, step, value)
    reachable = sum(max((o[3] for o in opts), default=0) for opts in options)
    need = min(reachable, int(math.ceil(share * resolution - 1e-9)))
    best, back = _knapsack(options, reachable)
    b = min(range(need, reachable + 1), key=lambda k: (best[k], k))
    return _walk_back(probes, options, back, b)
