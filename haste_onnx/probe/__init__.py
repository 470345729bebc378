"""L (and tile) per layer from a probe, data-free by default, one module per job:

- `options`: how the probe chooses (`ProbeOptions`: rule, objective, fidelity target, timing context);
- `images`: the probe's inputs (smooth synthetic noise, or unlabelled images);
- `disturbance`: how much a change disturbs the model's output;
- `layers`: each layer rewritten alone at every candidate and measured;
- `layer_time`: each layer timed as its Conv and as HasteConv, in its real context;
- `fidelity`: the whole rewritten model against the original, and the target;
- `knapsack`: the choice within a budget or for a target, solved exactly;
- `allocation`: the probe's result (`Allocation`), applied to a plan;
- `planner`: the default plan, policy then probe, then the whole-model speed check (`plan_with_probe`).
"""
from .allocation import Allocation, NoProbe, allocate, allocation_line  # noqa: F401
from .options import BUDGET_DRAWS, DEFAULT_CANDIDATES, DEFAULT_PROBE_BUDGET, ProbeOptions  # noqa: F401
from .planner import plan_with_probe  # noqa: F401
