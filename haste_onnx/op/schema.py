"""The ONNX OpSchemas of haste::HasteConv (and HasteLevel, op/level.py), so onnx.checker and shape inference accept it."""
from __future__ import annotations

import onnx
from onnx import defs, helper

from .geometry import DOMAIN, OP_TYPE, OPSET_VERSION, ConvAttrs
from .stats import STATS_SIZE

_DOC = "Conv with inputs merged per spatial tile by locality-sensitive hashing (HASTE). See docs/op_spec.md."


def _attributes():
    A = defs.OpSchema.Attribute
    T = defs.OpSchema.AttrType
    return [
        A("auto_pad", helper.make_attribute("auto_pad", "NOTSET"), "as Conv"),
        A("dilations", T.INTS, "as Conv", required=False),
        A("group", helper.make_attribute("group", 1), "as Conv"),
        A("kernel_shape", T.INTS, "as Conv", required=False),
        A("pads", T.INTS, "as Conv", required=False),
        A("strides", T.INTS, "as Conv", required=False),
        A("tile", helper.make_attribute("tile", [4, 4]), "output tile [height, width]"),
        A("centering", helper.make_attribute("centering", 1), "1: subtract the channel mean before hashing"),
        A("merge", helper.make_attribute("merge", "mean"),
          "mean: merged filter = sum of the members' slices; project: each slice scaled by the member's "
          "least-squares scale onto the merged patch"),
        A("magnitude_split", helper.make_attribute("magnitude_split", 0),
          "1: channels merge only when their squared norms share a binary exponent"),
        A("activation", helper.make_attribute("activation", ""),
          "fused activation applied last: '' (none), 'Relu' or 'Clip'"),
        A("activation_params", T.FLOATS, "Clip's [min, max]", required=False),
        A("seed", T.INT, "seed the hyperplanes were drawn with (provenance)", required=False),
        A("sparsity", T.FLOAT, "fraction of zeros the hyperplanes were drawn with (provenance)", required=False),
    ]


def _dims(type_proto):
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return list(type_proto.tensor_type.shape.dim)


def _infer(ctx) -> None:
    if ctx.get_num_outputs() > 1:
        stats = onnx.TypeProto()
        stats.tensor_type.elem_type = onnx.TensorProto.INT64
        stats.tensor_type.shape.dim.add().dim_value = STATS_SIZE
        ctx.set_output_type(1, stats)
    x_type = ctx.get_input_type(0)
    out = onnx.TypeProto()
    out.tensor_type.elem_type = x_type.tensor_type.elem_type or onnx.TensorProto.FLOAT
    x_dims, w_dims = _dims(x_type), _dims(ctx.get_input_type(1))
    if x_dims is None:
        ctx.set_output_type(0, out)
        return
    if len(x_dims) != 4:
        raise onnx.shape_inference.InferenceError(f"HasteConv: X must have rank 4, got rank {len(x_dims)}")
    attrs = {}
    for name in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"):
        attr = ctx.get_attribute(name)
        if attr is not None:
            attrs[name] = helper.get_attribute_value(attr)
    weight_shape = [d.dim_value if d.HasField("dim_value") else None for d in w_dims] if w_dims else None
    conv = ConvAttrs.from_dict(attrs, weight_shape)
    shape = out.tensor_type.shape
    shape.dim.add().CopyFrom(x_dims[0])
    channels = shape.dim.add()
    if w_dims and w_dims[0].HasField("dim_value"):
        channels.dim_value = w_dims[0].dim_value
    known = [d.dim_value if d.HasField("dim_value") else None for d in x_dims[2:]]
    if None not in known:
        for size in conv.output_hw(known):
            shape.dim.add().dim_value = size
    else:
        # A symbolic size keeps its name only when the conv preserves it.
        for axis, dim in enumerate(x_dims[2:]):
            new = shape.dim.add()
            if dim.HasField("dim_value"):
                new.dim_value = _axis_output(conv, axis, dim.dim_value)
            elif conv.strides[axis] == 1 and _preserves_size(conv, axis):
                new.CopyFrom(dim)
    ctx.set_output_type(0, out)


def _axis_output(conv: ConvAttrs, axis: int, size: int) -> int:
    sizes = [size, size]
    return conv.output_hw(sizes)[axis]


def _preserves_size(conv: ConvAttrs, axis: int) -> bool:
    if conv.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return True
    if conv.auto_pad == "VALID":
        return conv.effective_kernel()[axis] == 1
    return conv.pads[axis] + conv.pads[axis + 2] == conv.effective_kernel()[axis] - 1


def make_schema() -> defs.OpSchema:
    P = defs.OpSchema.FormalParameter
    Opt = defs.OpSchema.FormalParameterOption
    schema = defs.OpSchema(
        OP_TYPE, DOMAIN, OPSET_VERSION, _DOC,
        inputs=[P("X", "T", "input [N, C_in, H, W]"),
                P("W", "T", "weights [C_out, C_in/group, kH, kW]"),
                P("B", "T", "bias [C_out]", param_option=Opt.Optional),
                P("hyperplanes", "T", "ternary hyperplanes [L, pH*pW]"),
                P("Z", "T", "optional residual of Y's shape, added before the activation", param_option=Opt.Optional)],
        outputs=[P("Y", "T", "output [N, C_out, H_out, W_out]"),
                 P("stats", "S", "optional int64 [7] counters of the work done", param_option=Opt.Optional)],
        type_constraints=[("T", ["tensor(float)"], "float32 only"), ("S", ["tensor(int64)"], "counters")],
        attributes=_attributes(),
    )
    schema.set_type_and_shape_inference_function(_infer)
    return schema


def register_schema() -> None:
    """Register the schemas of HasteConv and HasteLevel with onnx once per process (idempotent)."""
    from .level import LEVEL_OP, make_level_schema

    if not defs.has(OP_TYPE, DOMAIN):
        defs.register_schema(make_schema())
    if not defs.has(LEVEL_OP, DOMAIN):
        defs.register_schema(make_level_schema())
