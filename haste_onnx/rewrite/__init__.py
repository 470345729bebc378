"""Model rewrites: Conv -> HasteConv and back.

One rule per module, applied by `rewrite_model` and `strip_model`:
- `normalize`: static weights (Constant, ConstantOfShape -> initializers) and
  BatchNormalization folding;
- `conv_to_haste`: the replacement itself, with one layer's settings;
- `fuse_activation`: a following residual Add and Relu/Clip into HasteConv;
- `strip`: HasteConv -> Conv;
- `steer`: one steerable model from a plan per level (`--steerable`), and back;
- `versions`: IR version and opset imports.
`analysis` and `graphs` are the shared read-only views and edit helpers;
`report` the per-layer table. What to replace comes from a plan
(`haste_onnx.plan`), looked up by site.

Both functions work on a copy: the model passed in is never modified.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import onnx

from ..errors import ModelRejected
from ..plan import HashingOptions, Plan, Policy, plan_sites, site_shapes
from .analysis import ConvSite, collect, format_dims  # noqa: F401  (format_dims: for the tables)
from .conv_to_haste import replace_conv
from .fuse_activation import fuse_activations
from .graphs import TypeTable, all_names
from .normalize import StaticTensor, fold_batchnorm, materialize, resolve_static
from .report import LayerRow, RewriteReport, haste_settings, layer_row  # noqa: F401
from .strip import strip_haste
from .versions import check_opset, finalize

__all__ = ["HashingOptions", "Plan", "Policy", "LayerRow", "RewriteReport", "rewrite_model", "strip_model",
           "layer_row"]


def rewrite_model(model: onnx.ModelProto, plan: Union[Plan, HashingOptions] = HashingOptions(),
                  policy: Optional[Policy] = None) -> Tuple[onnx.ModelProto, RewriteReport]:
    """A copy of `model` with the Convs the plan names replaced by HasteConv, and the per-layer report.

    `plan` is a Plan (made for this model: PlanMismatch otherwise), or hashing options that, with `policy`,
    make one (`haste_onnx.plan.plan_model`). Raises ModelRejected for a model without Conv, an opset below 7,
    or when no Conv is replaced and the model has no HasteConv yet (nothing to do).
    """
    work = onnx.ModelProto()
    work.CopyFrom(model)
    check_opset(work)
    types = TypeTable.infer(work)
    sites = collect(work, types)
    if not isinstance(plan, Plan):
        plan = plan_sites(sites, plan, policy if policy is not None else Policy())
    elif policy is not None:
        raise ValueError("a policy is for building a plan; this plan is made already")
    report = RewriteReport(settings=dict(plan.origin))
    if not sites:
        raise ModelRejected("the model has no Conv node")
    plan.check_matches(site_shapes(sites))
    taken = all_names(work)
    for site, layer in zip(sites, plan.layers):
        if site.op != "Conv":
            report.layers.append(layer_row(site, "HasteConv", settings=haste_settings(site)))
            continue
        if layer.settings is None:
            report.layers.append(layer_row(site, "kept", layer.reason))
            continue
        node = site.node
        weight = _materialize(work, site, 1)
        bias = _materialize(work, site, 2)
        folded, note = fold_batchnorm(work, site.scope, node, weight, bias, taken)
        settings = replace_conv(site, node, layer.settings, taken, types.types.get(node.output[0]))
        report.layers.append(layer_row(site, "replaced", settings=settings, note=note or None))
    if not report.count("replaced") and not report.count("HasteConv"):
        raise RejectedWithReport("no Conv is eligible for HasteConv; nothing to do", report)
    if plan.fuse:
        fused = dict(fuse_activations(work, types))
        for row in report.layers:
            if row.status == "replaced" and row.node in fused and row.settings is not None:
                row.settings["fused"] = fused[row.node]
    finalize(work, added_initializers=report.count("replaced") > 0)
    return work, report


class RejectedWithReport(ModelRejected):
    """Nothing to do; the per-layer report says why for each layer."""

    def __init__(self, message: str, report: RewriteReport):
        super().__init__(message)
        self.report = report


def _materialize(model: onnx.ModelProto, site: ConvSite, index: int) -> Optional[StaticTensor]:
    node = site.node
    if len(node.input) <= index or not node.input[index]:
        return None
    tensor = resolve_static(site.scope, node.input[index])  # again: earlier edits may have moved it
    assert isinstance(tensor, StaticTensor), tensor
    materialize(model, tensor)
    return tensor


def strip_model(model: onnx.ModelProto) -> Tuple[onnx.ModelProto, RewriteReport]:
    """A copy of `model` with every HasteConv turned back into Conv; ModelRejected when there is none. A
    steerable model gives back its level-0 branch: the original, exactly."""
    from .steer import is_steerable, select_level

    if is_steerable(model):
        report = RewriteReport()
        top = select_level(model, 1.0)
        report.layers.extend(layer_row(site, "stripped", settings=haste_settings(site))
                             for site in collect(top) if site.op != "Conv")
        return select_level(model, 0.0), report
    work = onnx.ModelProto()
    work.CopyFrom(model)
    sites = [s for s in collect(work) if s.op != "Conv"]
    if not sites:
        raise ModelRejected("the model has no HasteConv node; nothing to strip")
    report = RewriteReport()
    for site in sites:
        report.layers.append(layer_row(site, "stripped", settings=haste_settings(site)))
    strip_haste(work)
    finalize(work, added_initializers=False)
    return work, report
