"""The normalize rule: Constant / ConstantOfShape weights, BatchNormalization folding, non-static weights."""
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from haste_onnx.check import check_load, check_model
from haste_onnx.rewrite import HashingOptions, RejectedWithReport, rewrite_model, strip_model
from models_inline import (bn_model, constant_of_shape_model, move_to_constants, plain_model, random_input, run_ort,
                           run_reference)

EXACT = HashingOptions(hyperplanes=64, sparsity=0.0)


def statuses(report):
    return {r.node: r.outcome() for r in report.layers}


def ops(model):
    return [n.op_type for n in model.graph.node]


def test_weights_and_bias_from_constant_nodes():
    original = move_to_constants(plain_model(), ["w1", "b1", "w2"])
    assert ops(original)[:3] == ["Constant"] * 3
    model, report = rewrite_model(original, EXACT)
    assert statuses(report) == {"stem": "kept: first Conv stays dense (--allow-first)", "c1": "replaced",
                                "c2": "replaced"}
    assert ops(model) == ["Conv", "Tanh", "HasteConv", "HasteConv"]
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in original.graph.node[:3]}
    for name, value in constants.items():
        np.testing.assert_array_equal(inits[name], value)
    check_model(model)
    x = random_input([1, 3, 8, 8])
    np.testing.assert_allclose(run_ort(model, {"X": x}, with_library=True)[0], run_ort(original, {"X": x})[0],
                               atol=1e-4)


def test_a_constant_shared_by_two_convs_becomes_one_initializer():
    original = plain_model()
    original.graph.node[3].input[1] = "w1"  # c2 reads c1's weight too
    original = move_to_constants(original, ["w1"])
    model, _ = rewrite_model(original, EXACT)
    assert [i.name for i in model.graph.initializer].count("w1") == 1
    assert "Constant" not in ops(model)
    x = random_input([1, 3, 8, 8])
    np.testing.assert_allclose(run_ort(model, {"X": x}, with_library=True)[0], run_ort(original, {"X": x})[0],
                               atol=1e-4)


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_weights_and_bias_from_constant_of_shape(opset):
    original = constant_of_shape_model(opset)
    model, report = rewrite_model(original)
    assert statuses(report)["c1"] == statuses(report)["Y"] == "replaced"
    assert ops(model) == ["Conv", "Tanh", "HasteConv", "HasteConv"]  # ConstantOfShape and its shapes are gone
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_array_equal(inits["b1"], np.full(16, 0.5, np.float32))
    np.testing.assert_array_equal(inits["w2"], np.full((16, 16, 3, 3), 0.01, np.float32))
    check_model(model)
    x = random_input([1, 3, 8, 8])
    want = run_ort(original, {"X": x})[0]
    # w2 is uniform, so merging never changes Y; c1 runs with 64 hyperplanes below
    exact, _ = rewrite_model(original, EXACT)
    np.testing.assert_allclose(run_ort(exact, {"X": x}, with_library=True)[0], want, atol=1e-4)


def test_weights_that_are_not_static_are_skipped_with_the_reason():
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
dyn (float[1,16,8,8] X, float[16,16,3,3] W) => (float[1,16,8,8] Y, float[1,16,8,8] Z) {
    a = Conv <pads = [1, 1, 1, 1]> (X, w0)
    Y = Conv <pads = [1, 1, 1, 1]> (a, W)
    w2 = Identity (w0)
    Z = Conv <pads = [1, 1, 1, 1]> (a, w2)
}
""")
    model.graph.initializer.append(numpy_helper.from_array(np.ones((16, 16, 3, 3), np.float32), "w0"))
    with pytest.raises(RejectedWithReport) as err:
        rewrite_model(model)
    reasons = [r.reason for r in err.value.report.layers]
    assert reasons[1:] == ["weights are not static: 'W' is a graph input, not a constant",
                           "weights are not static: 'w2' comes from Identity, not a constant"]


def test_batchnorm_is_folded_exactly_when_the_conv_output_has_no_other_reader():
    original = bn_model()
    model, report = rewrite_model(original, EXACT)
    assert statuses(report) == {
        "a": "kept: first Conv stays dense (--allow-first)",
        "c1": "replaced (folded BatchNormalization n1)",
        "c2": "replaced (BatchNormalization not folded: the Conv output has other readers)",
    }
    assert ops(model) == ["Conv", "HasteConv", "HasteConv", "BatchNormalization", "Add"]
    c1 = model.graph.node[1]
    assert list(c1.output) == ["n1"] and list(c1.input[1:3]) == ["c1.weight_bn_folded", "c1.bias_bn_folded"]
    names = {i.name for i in model.graph.initializer}
    assert not names & {"w1", "b1", "bn_scale1", "bn_beta1", "bn_mean1", "bn_var1"}  # no longer read
    check_model(model)
    check_load(model)
    x = random_input([1, 16, 8, 8])
    want = run_ort(original, {"X": x})[0]
    np.testing.assert_allclose(run_ort(model, {"X": x}, with_library=True)[0], want, atol=1e-4)
    np.testing.assert_allclose(run_reference(model, {"X": x})[0], want, atol=1e-4)
    stripped, _ = strip_model(model)
    np.testing.assert_allclose(run_ort(stripped, {"X": x})[0], want, atol=1e-5)


def test_folded_weights_follow_the_formula():
    original = bn_model()
    model, _ = rewrite_model(original)
    src = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in original.graph.initializer}
    got = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    s = src["bn_scale1"] / np.sqrt(src["bn_var1"] + 1e-3)
    np.testing.assert_array_equal(got["c1.weight_bn_folded"], (src["w1"] * s[:, None, None, None]).astype(np.float32))
    np.testing.assert_array_equal(got["c1.bias_bn_folded"],
                                  ((src["b1"] - src["bn_mean1"]) * s + src["bn_beta1"]).astype(np.float32))


def test_batchnorm_in_training_mode_is_not_folded():
    original = bn_model(opset=15)
    bn = original.graph.node[2]
    bn.attribute.append(helper.make_attribute("training_mode", 1))
    _, report = rewrite_model(original)
    assert statuses(report)["c1"] == "replaced (BatchNormalization not folded: not in inference mode)"
