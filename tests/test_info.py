"""`info`: op counts, conv MACs, HasteConv settings per layer."""
import json

from haste_onnx.cli import main
from haste_onnx.commands.info import format_info
from haste_onnx.commands.tables import format_table
from haste_onnx.model_info import model_info
from haste_onnx.plan.options import layer_seed
from haste_onnx.rewrite import HashingOptions, rewrite_model
from models_inline import chain_model, if_model, plain_model


def test_info_of_a_plain_model():
    info = model_info(chain_model())
    assert info["op_counts"] == {"Conv": 8, "Tanh": 2}
    assert info["nodes"] == 10 and info["conv_layers"] == 8 and info["haste_layers"] == 0
    macs = {r["node"]: r["macs"] for r in info["layers"]}
    assert macs == {"stem": 27648, "c1": 147456, "c2": 147456, "pw": 8192, "gr": 36864, "dw": 9216,
                    "small": 147456, "Y": 36864}
    assert info["conv_macs"] == sum(macs.values()) and info["haste_macs"] == 0


def test_info_of_a_rewritten_model_shows_the_settings():
    model, _ = rewrite_model(chain_model(), HashingOptions(hyperplanes=10, tile=(2, 4), seed=5))
    info = model_info(model)
    assert info["op_counts"] == {"Conv": 5, "haste::HasteConv": 3, "Tanh": 2}
    assert info["opsets"] == {"ai.onnx": 17, "haste": 1}
    settings = {r["node"]: r["settings"] for r in info["layers"] if r["op"] == "HasteConv"}
    assert settings["c1"] == {"tile": [2, 4], "centering": True, "magnitude_split": False, "merge": "project", "seed": layer_seed(5, 1), "sparsity": 0.6667, "hyperplanes": 10,
                              "patch": [4, 6]}
    assert info["haste_macs"] == 3 * 147456
    text = format_info({"model": "m.onnx", **info})
    assert "haste::HasteConv      3" in text
    assert "8 conv layers, 3 of them HasteConv; 0.56 M conv MACs per image, 78.8% in HasteConv" in text
    c1 = next(line for line in text.splitlines() if line.startswith("c1 "))
    assert c1.split() == ["c1", "HasteConv", "Nx16x8x8", "3x3", "1x1", "1", "16->16", "147,456", "10", "2x4", "4x6",
                          "0.6667", str(layer_seed(5, 1)), "1"]


def test_info_counts_nodes_inside_subgraphs():
    info = model_info(if_model())
    assert info["op_counts"] == {"Conv": 2, "Identity": 1, "If": 1}
    assert [r["node"] for r in info["layers"]] == ["stem", "branch.then_branch/inner"]


def test_format_table_aligns_columns():
    assert format_table(["a", "bb"], [("xyz", 1), ("q", 22)], right=(1,)).splitlines() == [
        "a    bb", "---  --", "xyz   1", "q    22"]


def test_info_command_text_and_json(tmp_path, capsys):
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(plain_model(dynamic=True), str(path))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"model: {path} (IR 8; opsets ai.onnx 17; 4 nodes)"
    assert "(3 layer(s) of unknown size not counted)" in out
    assert main(["info", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == str(path) and doc["op_counts"] == {"Conv": 3, "Tanh": 1}
    assert [r["macs"] for r in doc["layers"]] == [None, None, None]
    assert doc["layers"][0]["input_shape"] == ["N", 3, "H", "W"]
