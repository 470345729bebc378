"""L (and tile) per layer from a probe, data-free by default, one module per job:

- `images`: the probe's inputs (smooth synthetic noise, or unlabelled images);
- `disturbance`: how much a change disturbs the model's output;
- `layers`: each layer rewritten alone at every candidate and measured;
- `knapsack`: the budget and target rules, solved exactly;
- `allocation`: the probe's result (`Allocation`), applied to a plan;
- `planner`: the default plan, policy then probe (`plan_with_probe`).
"""
from .allocation import (BUDGET_DRAWS, DEFAULT_CANDIDATES, DEFAULT_PROBE_BUDGET, Allocation, NoProbe,  # noqa: F401
                         allocate, allocation_line)
from .planner import ProbeOptions, plan_with_probe  # noqa: F401
