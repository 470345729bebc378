"""Real-world graph shapes: subgraphs, NHWC, dynamic dimensions, opsets 7 to 17, IR versions."""
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from haste_onnx.check import check_load, check_model
from haste_onnx.op.geometry import DOMAIN, OP_TYPE
from haste_onnx.rewrite import HashingOptions, rewrite_model, strip_model
from models_inline import as_ir3, bn_model, if_model, nhwc_model, plain_model, random_input, run_ort, run_reference

EXACT = HashingOptions(hyperplanes=64, sparsity=0.0)


def statuses(report):
    return {r.node: r.outcome() for r in report.layers}


@pytest.mark.parametrize("weight_in_branch", [False, True])
def test_conv_inside_if(weight_in_branch):
    original = if_model(weight_in_branch)
    model, report = rewrite_model(original, EXACT)
    assert statuses(report) == {"stem": "kept: first Conv stays dense (--allow-first)",
                                "branch.then_branch/inner": "replaced"}
    then = model.graph.node[1].attribute[0].g
    inner = then.node[-1]
    assert (inner.op_type, inner.domain) == (OP_TYPE, DOMAIN)
    assert [i.name for i in then.initializer][-1] == "inner.hyperplanes"  # beside the node, in the branch
    if weight_in_branch:
        assert [n.op_type for n in then.node] == [OP_TYPE]
        assert "w1_local" in {i.name for i in then.initializer}
    check_model(model)
    check_load(model)
    x = random_input([1, 16, 8, 8])
    for cond in (True, False):
        feeds = {"X": x, "cond": np.array(cond)}
        want = run_ort(original, feeds)[0]
        np.testing.assert_allclose(run_ort(model, feeds, with_library=True)[0], want, atol=1e-4)
        np.testing.assert_allclose(run_reference(model, feeds)[0], want, atol=1e-4)
        np.testing.assert_array_equal(run_ort(strip_model(model)[0], feeds)[0], want)


def test_include_pattern_matches_the_subgraph_path():
    _, report = rewrite_model(if_model(), policy=__import__("haste_onnx.plan").plan.Policy(include=["branch.*"]))
    assert statuses(report)["branch.then_branch/inner"] == "replaced"


def test_nhwc_model_with_transposes_around_the_convs():
    original = nhwc_model()
    model, report = rewrite_model(original, EXACT)
    assert statuses(report) == {"s": "kept: first Conv stays dense (--allow-first)", "c": "replaced"}
    assert [r.input_shape for r in report.layers] == [["N", 16, 8, 8], ["N", 16, 8, 8]]
    assert [n.op_type for n in model.graph.node] == ["Transpose", "Conv", OP_TYPE, "Transpose"]
    x = random_input([3, 8, 8, 16])
    np.testing.assert_allclose(run_ort(model, {"X": x}, with_library=True)[0], run_ort(original, {"X": x})[0],
                               atol=1e-4)


def test_dynamic_batch_and_spatial_dimensions():
    original = plain_model(dynamic=True)
    model, report = rewrite_model(original, EXACT)
    rows = {r.node: r for r in report.layers}
    assert rows["stem"].input_shape == ["N", 3, "H", "W"]
    assert rows["c1"].input_shape == ["N", 16, None, None]  # onnx shape inference does not keep H, W
    assert rows["c1"].macs is None and report.summary()["layers_with_unknown_macs"] == 3
    assert "unknown size" in report.summary_line()
    info = {v.name: v for v in model.graph.value_info}["c1"].type.tensor_type
    assert info.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value or None for d in info.shape.dim] == ["N", 16, None, None]
    check_model(model)
    for shape in ([1, 3, 8, 8], [2, 3, 11, 6]):
        x = random_input(shape)
        np.testing.assert_allclose(run_ort(model, {"X": x}, with_library=True)[0], run_ort(original, {"X": x})[0],
                                   atol=1e-4)


@pytest.mark.parametrize("opset", [7, 11, 13, 17])
def test_opsets(opset):
    original = bn_model(opset=opset)
    if opset == 7:
        original = as_ir3(original)  # as opset-7 exporters wrote them
    check_model(original)
    model, report = rewrite_model(original, EXACT)
    assert report.count("replaced") == 2
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset), (DOMAIN, 1)]
    assert model.ir_version == (4 if opset == 7 else 8)
    check_model(model)
    check_load(model)
    x = random_input([1, 16, 8, 8])
    with warnings.catch_warnings():
        want = run_ort(original, {"X": x})[0]
    np.testing.assert_allclose(run_ort(model, {"X": x}, with_library=True)[0], want, atol=1e-4)
    np.testing.assert_allclose(run_ort(strip_model(model)[0], {"X": x})[0], want, atol=1e-5)


def test_ir3_graph_inputs_stay_and_new_initializers_are_not_inputs():
    original = as_ir3(plain_model(opset=7))
    model, _ = rewrite_model(original)
    assert [i.name for i in model.graph.input] == [i.name for i in original.graph.input]
    assert {"c1.hyperplanes", "c2.hyperplanes"} <= {i.name for i in model.graph.initializer}


def test_hyperplanes_are_float32_ternary_with_l_rows():
    model, _ = rewrite_model(plain_model(), HashingOptions(hyperplanes=5, tile=(4, 2)))
    planes = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith(".hyperplanes")}
    assert set(planes) == {"c1.hyperplanes", "c2.hyperplanes"}
    for p in planes.values():
        assert p.dtype == np.float32 and p.shape == (5, 6 * 4)
        assert set(np.unique(p)) <= {-1.0, 0.0, 1.0}


def test_name_clash_gets_a_unique_hyperplane_name():
    original = plain_model()
    original.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(1, np.float32), "c1.hyperplanes"))
    model, _ = rewrite_model(original)
    c1 = next(n for n in model.graph.node if n.name == "c1")
    assert c1.input[3] == "c1.hyperplanes_1"
