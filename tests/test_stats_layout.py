"""The `stats` counters are in the same order in C++ and Python.

custom_op/haste_stats.h holds the C++ list (the HASTE_STATS_FIELDS X-macro and
kStatsCount); haste_onnx/op/stats.py's STATS_FIELDS is the Python one. A
missing header fails the test: it is part of the source tree.
"""
from __future__ import annotations

import re
from pathlib import Path

from haste_onnx.op.stats import STATS_FIELDS

HEADER = Path(__file__).resolve().parent.parent / "custom_op" / "haste_stats.h"


def _macro_body(text: str, name: str) -> str:
    """The body of a multi-line #define, continuation backslashes removed."""
    match = re.search(r"^#define\s+" + name + r"\(X\)((?:[^\n]*\\\n)*[^\n]*)$", text, re.MULTILINE)
    assert match, f"#define {name}(X) not found in {HEADER}"
    return match.group(1).replace("\\\n", "\n")


def test_header_field_order_matches_python():
    assert HEADER.is_file(), f"{HEADER} is missing"
    text = HEADER.read_text()
    fields = re.findall(r"\bX\(\s*([A-Za-z_]\w*)\s*,", _macro_body(text, "HASTE_STATS_FIELDS"))
    assert tuple(fields) == STATS_FIELDS


def test_header_count_matches_python():
    assert HEADER.is_file(), f"{HEADER} is missing"
    counts = re.findall(r"constexpr\s+int\s+kStatsCount\s*=\s*(\d+)\s*;", HEADER.read_text())
    assert counts == [str(len(STATS_FIELDS))]
