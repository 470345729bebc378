"""How hyperplanes are drawn and tiles are cut: the options a plan is built from, and their defaults."""
from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from typing import Tuple

from ..op.geometry import DEFAULT_TILE, MAX_HYPERPLANES

DEFAULT_HYPERPLANES = 14
DEFAULT_SPARSITY = 0.6667
# Least-squares merging: better than the published mean at equal FLOPs (docs/ablations.md).
DEFAULT_MERGE = "project"
MERGE_RULES = ("mean", "project")


@dataclass(frozen=True)
class HashingOptions:
    """How hyperplanes are drawn and tiles are cut (the `hashing options` of the CLI)."""

    hyperplanes: int = DEFAULT_HYPERPLANES
    tile: Tuple[int, int] = DEFAULT_TILE
    sparsity: float = DEFAULT_SPARSITY
    seed: int = 0
    centering: bool = True
    magnitude_split: bool = False
    merge: str = DEFAULT_MERGE
    # (shell pattern, L) pairs given by the user: a layer whose name matches takes that L; the first match wins.
    layer_hyperplanes: Tuple[Tuple[str, int], ...] = ()
    # (shell pattern, (tile_h, tile_w)) pairs, likewise for the tile.
    layer_tiles: Tuple[Tuple[str, Tuple[int, int]], ...] = ()
    # Fuse a following residual Add and Relu/Clip into the HasteConv (rewrite/fuse_activation.py).
    fuse: bool = True

    def validate(self) -> None:
        if not 1 <= self.hyperplanes <= MAX_HYPERPLANES:
            raise ValueError(f"--hyperplanes must be between 1 and {MAX_HYPERPLANES}, got {self.hyperplanes}")
        for pattern, count in self.layer_hyperplanes:
            if not 1 <= count <= MAX_HYPERPLANES:
                raise ValueError(f"--layer-hyperplanes {pattern}={count}: L must be between 1 and {MAX_HYPERPLANES}")
        for pattern, tile in self.layer_tiles:
            if len(tile) != 2 or min(tile) < 1:
                raise ValueError(f"--layer-tile {pattern}: the tile must be positive, got {tile}")
        if len(self.tile) != 2 or min(self.tile) < 1:
            raise ValueError(f"--tile must be positive, got {'x'.join(map(str, self.tile))}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        if self.merge not in MERGE_RULES:
            raise ValueError(f"--merge must be mean or project, got {self.merge!r}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")

    def node_seed(self, index: int) -> int:
        """The seed of the `index`-th Conv/HasteConv in traversal order: a hash of (seed, index), so runs with
        different seeds share no draws (with `seed + index`, layer k under seed s + 1 drew what layer k + 1
        drew under seed s)."""
        return layer_seed(self.seed, index)

    def pinned_hyperplanes(self, names) -> "int | None":
        """L from the first `layer_hyperplanes` pattern matching one of `names`, else None."""
        return _first_match(names, self.layer_hyperplanes)

    def pinned_tile(self, names) -> "Tuple[int, int] | None":
        """The tile from the first `layer_tiles` pattern matching one of `names`, else None."""
        tile = _first_match(names, self.layer_tiles)
        return None if tile is None else tuple(tile)

    def to_json(self) -> dict:
        return {"hyperplanes": self.hyperplanes, "tile": list(self.tile), "sparsity": self.sparsity, "seed": self.seed,
                "centering": self.centering, "magnitude_split": self.magnitude_split, "merge": self.merge,
                "layer_hyperplanes": [list(p) for p in self.layer_hyperplanes],
                "layer_tiles": [[p, list(t)] for p, t in self.layer_tiles], "fuse": self.fuse}


def layer_seed(seed: int, index: int) -> int:
    """The first 7 bytes of SHA-256 of "haste-onnx:<seed>:<index>", as an integer (< 2**56)."""
    digest = hashlib.sha256(f"haste-onnx:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _first_match(names, pairs):
    for pattern, value in pairs:
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            return value
    return None
