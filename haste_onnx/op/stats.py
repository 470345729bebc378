"""The work counters of HasteConv's optional `stats` output, and their sums.

`STATS_FIELDS` is the order of the int64 counters in `stats` (docs/op_spec.md);
the C++ kernel writes them in the order of `custom_op/haste_stats.h`, and a
test checks that both agree. `Counters` is the one place that adds them up:
evaluate, bench and the probe all read a layer's work through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

STATS_FIELDS = ("dense_macs", "haste_macs", "centering_ops", "hashing_ops", "merge_ops", "merged_channels",
                "channels")
STATS_SIZE = len(STATS_FIELDS)


@dataclass(frozen=True)
class Counters:
    """One layer's counters (summed over the images they were read from)."""

    dense_macs: int = 0
    haste_macs: int = 0
    centering_ops: int = 0
    hashing_ops: int = 0
    merge_ops: int = 0
    merged_channels: int = 0
    channels: int = 0

    @classmethod
    def from_array(cls, values: Iterable) -> "Counters":
        return cls(*(int(v) for v in values))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in STATS_FIELDS}

    @property
    def overhead_ops(self) -> int:
        """Work HASTE adds: centring, hashing and merging (an op counts as one MAC)."""
        return self.centering_ops + self.hashing_ops + self.merge_ops

    @property
    def saved_macs(self) -> int:
        """MACs the merging saved, before overheads."""
        return self.dense_macs - self.haste_macs

    @property
    def net_saved_macs(self) -> int:
        """MACs saved with the overheads counted."""
        return self.saved_macs - self.overhead_ops
