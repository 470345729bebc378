"""The steerable model's options (docs/steerable.md): `rewrite --steerable` and `--levels` of eval and bench."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import List

DEFAULT_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def levels_list(text: str) -> List[float]:
    """`0,0.5,1` -> [0.0, 0.5, 1.0]: numbers in [0, 1], strictly rising."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected levels like 0,0.5,1, got {text!r}") from None
    if not values or any(math.isnan(v) or not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"every level must be a number in [0, 1], got {text!r}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise argparse.ArgumentTypeError(f"levels must rise strictly, got {text!r}")
    return values


def level_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"the level must be a number in [0, 1], got {text!r}")
    return value


def add_steering(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "steerable model",
        "One model, every operating point: --steerable writes a model with the optional float32 input "
        "haste_level in [0, 1] (0: the original Convs; 1: the plan the probe chose; between: the least "
        "disturbance that saves that share of level 1's saving, from the same probe). See docs/steerable.md.")
    group.add_argument("--steerable", action="store_true",
                       help="write one model that offers every level of --levels, chosen per call by the input "
                            "haste_level")
    group.add_argument("--levels", type=levels_list, default=None, metavar="L,L,...",
                       help="the levels the model offers (default 0,0.25,0.5,0.75,1; 0 is always offered; "
                            "levels other than 0 and 1 need the probe)")
    group.add_argument("--default-level", type=level_value, default=None, metavar="X",
                       help="the level a call runs when haste_level is not fed (default 1)")


def add_level_sweep(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("steerable model")
    group.add_argument("--levels", type=levels_list, default=None, metavar="L,L,...",
                       help="measure a steerable model (rewrite --steerable) at each of these levels, e.g. "
                            "0,0.25,0.5,0.75,1 (the model is used as it is: no rewrite)")


def level_plan_path(path: str, level: float) -> Path:
    """Where --save-plan writes a level's plan: PLAN.json -> PLAN.level-0.25.json (level 1: PLAN.json)."""
    p = Path(path)
    return p if level >= 1 else p.with_name(f"{p.stem}.level-{level:g}{p.suffix}")
