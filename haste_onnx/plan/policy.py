"""Which Conv layers the rewriter replaces (layer selection).

The default policy replaces a Conv when all of these hold:
- its kernel is larger than 1x1 (`--allow-1x1` switches 1x1 on),
- all strides are 1 (`--allow-strided`),
- `group == 1` (`--allow-grouped`; depthwise Convs, one input channel per
  group, are never replaced: there is nothing to merge),
- it has at least `--min-channels` (16) input channels per group,
- it is not the network's first Conv, the first Conv or HasteConv in the
  traversal order (`--allow-first`).

`--exclude PATTERN` (repeatable) keeps every node whose name matches; when
`--include PATTERN` is given, only matching nodes are considered, and the rules
above still apply to them. Patterns are shell-style (`fnmatch`, case
sensitive) and are tried against the node name, its path for nodes inside
subgraphs (`if_node.then_branch/conv`), and `<output>` for unnamed nodes.

Reasons no option can switch off (weights that are not static, non-float32
tensors, depthwise, not 2-D) come from `haste_onnx.rewrite.analysis`.

The policy decides; `build.plan_model` turns its decisions into a plan.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import List, Optional

DEFAULT_MIN_CHANNELS = 16


@dataclass
class Policy:
    include: List[str] = field(default_factory=list)
    exclude: List[str] = field(default_factory=list)
    min_channels: int = DEFAULT_MIN_CHANNELS
    allow_1x1: bool = False
    allow_strided: bool = False
    allow_grouped: bool = False
    allow_first: bool = False

    def decide(self, site) -> Optional[str]:
        """None when `site` (a ConvSite) is to be replaced, else the reason it is kept."""
        from ..rewrite.analysis import site_names  # here: the rewrite package imports the plan

        names = site_names(site)
        for pattern in self.exclude:
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                return f"excluded by --exclude {pattern}"
        if self.include and not any(fnmatch.fnmatchcase(n, p) for p in self.include for n in names):
            return "not matched by --include"
        if site.problem:
            return site.problem
        kernel, strides = site.kernel, site.strides
        if site.index == 0 and not self.allow_first:
            return "first Conv stays dense (--allow-first)"
        if all(k == 1 for k in kernel) and not self.allow_1x1:
            return "1x1 kernel (--allow-1x1)"
        if any(s != 1 for s in strides) and not self.allow_strided:
            return f"stride {'x'.join(map(str, strides))} (--allow-strided)"
        if site.group != 1 and not self.allow_grouped:
            return f"grouped, group={site.group} (--allow-grouped)"
        if site.channels_per_group < self.min_channels:
            per = " per group" if site.group != 1 else ""
            return f"{site.channels_per_group} input channels{per} < --min-channels {self.min_channels}"
        return None
