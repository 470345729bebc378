"""The rewrite plan: for every Conv site of a model, HasteConv with its settings, or kept with its reason.

The policy (`build.plan_model`) and the probe (`haste_onnx.probe`) make
plans; `haste_onnx.rewrite.rewrite_model` applies one by direct lookup. A plan
is saved and loaded as JSON (`haste-onnx rewrite --save-plan / --plan`); one
made for another model is refused with the first layer that differs.

Sites are named as the tables name them (`ConvSite.name`: the node name, its
path inside an `If`/`Loop` subgraph, or `<output>` for an unnamed node); a
name that repeats gets `#2`, `#3`, ... in traversal order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InputError
from .options import DEFAULT_MERGE

PLAN_FORMAT = "haste-onnx plan"
PLAN_VERSION = 1


class PlanMismatch(InputError):
    """The plan was made for another model."""


@dataclass(frozen=True)
class LayerSettings:
    """The HasteConv settings of one layer (attributes and hyperplanes, fully resolved)."""

    hyperplanes: int
    tile: Tuple[int, int]
    sparsity: float
    seed: int
    centering: bool = True
    magnitude_split: bool = False
    merge: str = DEFAULT_MERGE

    def to_json(self) -> dict:
        return {"hyperplanes": self.hyperplanes, "tile": list(self.tile), "sparsity": self.sparsity,
                "seed": self.seed, "centering": self.centering, "magnitude_split": self.magnitude_split,
                "merge": self.merge}

    @classmethod
    def from_json(cls, doc: dict) -> "LayerSettings":
        return cls(int(doc["hyperplanes"]), tuple(int(t) for t in doc["tile"]), float(doc["sparsity"]),
                   int(doc["seed"]), bool(doc.get("centering", True)), bool(doc.get("magnitude_split", False)),
                   str(doc.get("merge", DEFAULT_MERGE)))


@dataclass(frozen=True)
class SiteShape:
    """What a plan checks a model's site against: op, channels and kernel."""

    op: str
    in_channels: Optional[int]
    out_channels: Optional[int]
    kernel: Optional[Tuple[int, ...]]

    def text(self) -> str:
        kernel = "x".join(map(str, self.kernel)) if self.kernel else "?"
        return f"{self.op} {self.in_channels}->{self.out_channels} {kernel}"


@dataclass(frozen=True)
class LayerPlan:
    """One Conv site: replaced with `settings`, or kept (`settings` None) for `reason`."""

    site: str
    shape: SiteShape
    settings: Optional[LayerSettings] = None
    reason: Optional[str] = None
    pinned: bool = False  # L or tile named by the user for this layer: a probe keeps the layer and its settings
    probe: Optional[dict] = None  # what the probe chose and measured for this layer (JSON), when it ran

    @property
    def replaced(self) -> bool:
        return self.settings is not None

    def to_json(self) -> dict:
        doc = {"site": self.site, "op": self.shape.op, "in_channels": self.shape.in_channels,
               "out_channels": self.shape.out_channels,
               "kernel": list(self.shape.kernel) if self.shape.kernel else None}
        if self.settings is not None:
            doc["action"] = "HasteConv"
            doc["settings"] = self.settings.to_json()
        else:
            doc["action"] = "keep"
            doc["reason"] = self.reason
        if self.pinned:
            doc["pinned"] = True
        if self.probe is not None:
            doc["probe"] = self.probe
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> "LayerPlan":
        shape = SiteShape(doc["op"], doc.get("in_channels"), doc.get("out_channels"),
                          tuple(doc["kernel"]) if doc.get("kernel") else None)
        if doc.get("action") == "HasteConv":
            return cls(doc["site"], shape, LayerSettings.from_json(doc["settings"]), None, bool(doc.get("pinned")),
                       doc.get("probe"))
        if doc.get("action") != "keep":
            raise ValueError(f"layer {doc.get('site')!r}: action must be HasteConv or keep, got {doc.get('action')!r}")
        return cls(doc["site"], shape, None, doc.get("reason"), bool(doc.get("pinned")), doc.get("probe"))


@dataclass
class Plan:
    """Every Conv and HasteConv site of a model in traversal order, and what the rewrite does with it."""

    layers: List[LayerPlan]
    fuse: bool = True
    # How the plan was made: the options it was built from, and the probe's summary when one ran (JSON).
    origin: dict = field(default_factory=dict)

    def layer(self, site: str) -> LayerPlan:
        return self.by_site()[site]

    def by_site(self) -> Dict[str, LayerPlan]:
        return {layer.site: layer for layer in self.layers}

    def replaced(self) -> List[LayerPlan]:
        return [layer for layer in self.layers if layer.replaced]

    def with_layers(self, changes: Dict[str, LayerPlan], **origin) -> "Plan":
        """A copy with some layers replaced by `changes` (by site) and `origin` updated."""
        return Plan([changes.get(layer.site, layer) for layer in self.layers], self.fuse,
                    {**self.origin, **origin})

    def only(self, site: str, settings: LayerSettings) -> "Plan":
        """A copy in which only `site` is replaced, with `settings` (the probe's one-layer models)."""
        layers = [replace(layer, settings=settings, reason=None) if layer.site == site
                  else (replace(layer, settings=None, reason="not probed") if layer.replaced else layer)
                  for layer in self.layers]
        return Plan(layers, self.fuse, self.origin)

    def check_matches(self, shapes: Sequence[Tuple[str, SiteShape]]) -> None:
        """Raise PlanMismatch naming the first site where the model (`shapes`: site name and shape in traversal
        order) and the plan differ."""
        for i, ((site, shape), layer) in enumerate(zip(shapes, self.layers)):
            if site != layer.site:
                raise PlanMismatch(f"the plan does not match the model: conv site {i + 1} is {site!r} in the model "
                                   f"but {layer.site!r} in the plan")
            if shape != layer.shape:
                raise PlanMismatch(f"the plan does not match the model: {site!r} is {shape.text()} in the model "
                                   f"but {layer.shape.text()} in the plan")
        if len(shapes) != len(self.layers):
            extra = (f"{shapes[len(self.layers)][0]!r} is not in the plan" if len(shapes) > len(self.layers)
                     else f"{self.layers[len(shapes)].site!r} is not in the model")
            raise PlanMismatch(f"the plan does not match the model: the model has {len(shapes)} conv sites, the plan "
                               f"{len(self.layers)} ({extra})")

    def summary_line(self) -> str:
        """What the plan replaces, exactly: the L and tiles of the replaced layers, and how many are kept."""
        chosen = [layer.settings for layer in self.replaced()]
        convs = [layer for layer in self.layers if layer.shape.op == "Conv"]
        if not chosen:
            return f"plan: no layer replaced ({len(convs)} Conv layer(s) kept)"
        counts = sorted({s.hyperplanes for s in chosen})
        tiles = sorted({"x".join(map(str, s.tile)) for s in chosen})
        ls = f"L={counts[0]}" if len(counts) == 1 else f"L={counts[0]}..{counts[-1]}"
        kept = len(convs) - len(chosen)
        return (f"plan: {ls}, tile {'/'.join(tiles)} on {len(chosen)} layer(s)"
                + (f"; {kept} Conv layer(s) kept" if kept else ""))

    def to_json(self) -> dict:
        return {"format": PLAN_FORMAT, "version": PLAN_VERSION, "fuse": self.fuse, "origin": self.origin,
                "layers": [layer.to_json() for layer in self.layers]}

    @classmethod
    def from_json(cls, doc: dict) -> "Plan":
        if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
            raise ValueError(f"not a {PLAN_FORMAT} (no \"format\": \"{PLAN_FORMAT}\")")
        if doc.get("version") != PLAN_VERSION:
            raise ValueError(f"plan version {doc.get('version')!r} is not supported (this haste-onnx reads "
                             f"version {PLAN_VERSION})")
        return cls([LayerPlan.from_json(layer) for layer in doc["layers"]], bool(doc.get("fuse", True)),
                   dict(doc.get("origin") or {}))


def load_plan(path) -> Plan:
    """A plan from a JSON file; InputError (one line) when it is missing or malformed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a JSON plan ({str(err).splitlines()[0]})") from None
    try:
        return Plan.from_json(doc)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: malformed plan ({err})") from None


def save_plan(plan: Plan, path) -> None:
    """Write `plan` as JSON atomically (a temporary file beside `path`, then renamed)."""
    from ..model_io import write_text_atomic

    write_text_atomic(path, json.dumps(plan.to_json(), indent=2) + "\n")
