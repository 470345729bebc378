"""A plan from hashing options and a layer policy: the rule the rewrite follows without a probe.

Every Conv the policy accepts gets the options' settings: L and the tile from
the first `--layer-hyperplanes` / `--layer-tile` pattern that matches its
name (the layer is then pinned: a probe leaves it as given), else the global
ones; the seed is `options.layer_seed(seed, k)` (a hash of the two) for the
k-th Conv or HasteConv in traversal order. Every other site is kept with the policy's reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import List, Sequence, Tuple

import onnx

from .options import HashingOptions
from .plan import LayerPlan, LayerSettings, Plan, SiteShape
from .policy import Policy


def site_keys(sites) -> List[str]:
    """The plan's name of each site: its table name, with `#2`, `#3`, ... for repeats."""
    seen: Counter = Counter()
    keys = []
    for site in sites:
        seen[site.name] += 1
        keys.append(site.name if seen[site.name] == 1 else f"{site.name}#{seen[site.name]}")
    return keys


def site_shape(site) -> SiteShape:
    kernel = site.kernel
    return SiteShape(site.op, site.in_channels, site.out_channels, tuple(kernel) if kernel else None)


def site_shapes(sites) -> List[Tuple[str, SiteShape]]:
    return list(zip(site_keys(sites), (site_shape(s) for s in sites)))


def plan_sites(sites: Sequence, options: HashingOptions, policy: Policy) -> Plan:
    """The plan for already collected sites (`rewrite.analysis.collect`)."""
    from ..rewrite.analysis import site_names  # here: the rewrite package imports this one

    options.validate()
    layers = []
    for key, site in zip(site_keys(sites), sites):
        shape = site_shape(site)
        if site.op != "Conv":
            layers.append(LayerPlan(key, shape, None, "HasteConv already"))
            continue
        reason = policy.decide(site)
        if reason is not None:
            layers.append(LayerPlan(key, shape, None, reason))
            continue
        names = site_names(site)
        count, tile = options.pinned_hyperplanes(names), options.pinned_tile(names)
        settings = LayerSettings(count or options.hyperplanes, tile or tuple(options.tile), float(options.sparsity),
                                 options.node_seed(site.index), options.centering, options.magnitude_split,
                                 options.merge)
        layers.append(LayerPlan(key, shape, settings, pinned=count is not None or tile is not None))
    return Plan(layers, options.fuse, {"rule": "options", **options.to_json(), "policy": asdict(policy)})


def plan_model(model: onnx.ModelProto, options: HashingOptions = HashingOptions(), policy: Policy = Policy()) -> Plan:
    """The plan of `options` and `policy` for `model` (no probe)."""
    from ..rewrite.analysis import collect

    return plan_sites(collect(model), options, policy)
