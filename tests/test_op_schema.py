"""The Python OpSchema (checker, shape inference), the reference evaluator, and ORT's shape inference."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

import haste_onnx
from haste_onnx.op import register_schema
from haste_onnx.op.reference import HasteConv
from op_cases import Case, haste_model, make_arrays, reference, relative_error


def _shape(value_info):
    return [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
            for d in value_info.type.tensor_type.shape.dim]


def _infer(case, x_shape):
    register_schema()
    x, w, b, h = make_arrays(case)
    model = haste_model(case, w, b, h, x_shape=x_shape)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    y = [v for v in list(inferred.graph.value_info) + list(inferred.graph.output) if v.name == "Y"][0]
    return _shape(y)


@pytest.mark.parametrize("x_shape,case_kwargs,expected", [
    (["N", 16, "H", "W"], dict(pads=(1, 1, 1, 1)), ["N", 24, "H", "W"]),
    (["batch", 16, 32, 20], dict(pads=(1, 1, 1, 1), strides=(2, 2)), ["batch", 24, 16, 10]),
    (["N", 16, "H", "W"], dict(auto_pad="SAME_UPPER"), ["N", 24, "H", "W"]),
    (["N", 16, "H", "W"], dict(pads=(0, 0, 0, 0)), ["N", 24, None, None]),
    (["N", 16, "H", 9], dict(pads=(1, 0, 1, 0), strides=(1, 2)), ["N", 24, "H", 4]),
    ([2, 16, 7, 7], dict(auto_pad="VALID", dilations=(2, 2)), [2, 24, 3, 3]),
])
def test_onnx_shape_inference(x_shape, case_kwargs, expected):
    case = Case(batch=1, in_channels=16, out_channels=24, height=8, width=8, kernel=(3, 3), **case_kwargs)
    inferred = _infer(case, x_shape)
    # onnx names unknown sizes unk__N; None in `expected` stands for such a fresh name.
    assert [None if isinstance(d, str) and d.startswith("unk__") else d for d in inferred] == expected


def test_checker_rejects_without_schema_domain_import():
    register_schema()
    case = Case(batch=1, in_channels=16, out_channels=8, height=8, width=8, kernel=(3, 3))
    x, w, b, h = make_arrays(case)
    model = haste_model(case, w, b, h)
    del model.opset_import[1]  # drop the haste domain import
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)


def test_onnxruntime_infers_symbolic_output_shape():
    case = Case(batch=1, in_channels=16, out_channels=24, height=8, width=8, kernel=(3, 3), pads=(1, 1, 1, 1))
    x, w, b, h = make_arrays(case)
    model = haste_model(case, w, b, h, x_shape=["N", 16, "H", "W"])
    sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(),
                                providers=["CPUExecutionProvider"])
    assert sess.get_outputs()[0].shape == ["N", 24, "H", "W"]
    model = haste_model(case, w, b, h, x_shape=["N", 16, 12, 10])
    sess = ort.InferenceSession(model.SerializeToString(), haste_onnx.session_options(),
                                providers=["CPUExecutionProvider"])
    assert sess.get_outputs()[0].shape == ["N", 24, 12, 10]


def test_reference_evaluator_runs_haste_models():
    case = Case(batch=2, in_channels=20, out_channels=12, height=9, width=10, kernel=(3, 3), pads=(1, 1, 1, 1),
                hyperplanes=4, repeated_channels=5)
    x, w, b, h = make_arrays(case)
    evaluator = ReferenceEvaluator(haste_model(case, w, b, h), new_ops=[HasteConv])
    y = evaluator.run(None, {"X": x})[0]
    assert relative_error(y, reference(case, x, w, b, h)) == 0.0
    # Without bias, the empty optional input is handled.
    case.bias = False
    x, w, b, h = make_arrays(case)
    y = ReferenceEvaluator(haste_model(case, w, None, h), new_ops=[HasteConv]).run(None, {"X": x})[0]
    assert relative_error(y, reference(case, x, w, None, h)) == 0.0


def test_reference_hashing_is_bit_exact_float32():
    """Projections are sums of ±x in a fixed order: the spec's float32 result, not float64's."""
    from haste_onnx.op.reference import hash_codes
    v = np.array([[[1e8, 1.0, -1e8]]], np.float32)  # 1e8 + 1 rounds to 1e8 in float32
    planes = np.array([[1.0, 1.0, 1.0]], np.float32)
    assert hash_codes(v, planes, centering=False).tolist() == [[0]]  # float64 would give 1 > 0
