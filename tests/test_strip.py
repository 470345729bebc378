"""The strip rule: HasteConv back to Conv."""
import numpy as np
import onnx
import pytest
from onnx import helper

from haste_onnx.check import check_load, check_model
from haste_onnx.errors import ModelRejected
from haste_onnx.op.geometry import DOMAIN
from haste_onnx.plan import Policy
from haste_onnx.rewrite import HashingOptions, rewrite_model, strip_model
from models_inline import chain_model, constant_of_shape_model, if_model, plain_model, random_input, run_ort


def _node(n):
    """Everything that defines a node (an empty domain written or not is the same)."""
    return (n.name, n.op_type, n.domain or "", list(n.input), list(n.output), n.doc_string,
            [a.SerializeToString() for a in n.attribute])


@pytest.mark.parametrize("make", [plain_model, chain_model])
def test_strip_restores_the_original_nodes_and_outputs(make):
    original = make()
    rewritten, _ = rewrite_model(original, HashingOptions(hyperplanes=2),
                                 Policy(allow_first=True, allow_1x1=True, allow_strided=True, allow_grouped=True,
                                        min_channels=1))
    stripped, report = strip_model(rewritten)
    assert report.count("stripped") == sum(n.domain == DOMAIN for n in rewritten.graph.node) > 0
    assert [_node(n) for n in stripped.graph.node] == [_node(n) for n in original.graph.node]
    assert list(stripped.graph.initializer) == list(original.graph.initializer)
    assert [(o.domain, o.version) for o in stripped.opset_import] == [("", 17)]
    check_model(stripped)
    check_load(stripped, with_library=False)
    x = random_input([1, 3, 8, 8])
    np.testing.assert_array_equal(run_ort(stripped, {"X": x})[0], run_ort(original, {"X": x})[0])


def test_strip_inside_subgraphs_and_after_constant_of_shape():
    for original, feeds in [
        (if_model(True), {"X": random_input([1, 16, 8, 8]), "cond": np.array(True)}),
        (constant_of_shape_model(), {"X": random_input([1, 3, 8, 8])}),
    ]:
        rewritten, _ = rewrite_model(original, HashingOptions(hyperplanes=2))
        stripped, _ = strip_model(rewritten)
        assert not [n for n in stripped.graph.node if n.domain == DOMAIN]
        if "cond" in feeds:
            then = stripped.graph.node[1].attribute[0].g
            assert [n.op_type for n in then.node] == ["Conv"] and "inner.hyperplanes" not in \
                {i.name for i in then.initializer}
        np.testing.assert_array_equal(run_ort(stripped, feeds)[0], run_ort(original, feeds)[0])


def test_strip_without_hasteconv_is_nothing_to_do():
    with pytest.raises(ModelRejected, match="no HasteConv"):
        strip_model(plain_model())


def test_strip_refuses_a_read_stats_output():
    rewritten, _ = rewrite_model(plain_model())
    node = next(n for n in rewritten.graph.node if n.domain == DOMAIN)
    node.output.append("stats")
    rewritten.graph.output.append(helper.make_tensor_value_info("stats", onnx.TensorProto.INT64, [7]))
    with pytest.raises(ModelRejected, match="stats output"):
        strip_model(rewritten)
