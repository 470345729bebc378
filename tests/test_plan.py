"""The rewrite plan (`haste_onnx.plan`): made by the policy or the probe, applied by lookup, saved and loaded.

Small models inline in ONNX text (`conftest.net_model`: a stem Conv, c1 and c2 replaceable, a 1x1 head).
"""
import json

import onnx
import pytest

from conftest import net_model
from haste_onnx import cli
from haste_onnx.model_io import sha256_file
from haste_onnx.plan import HashingOptions, Plan, PlanMismatch, Policy, load_plan, plan_model, save_plan
from haste_onnx.plan.options import layer_seed
from haste_onnx.rewrite import rewrite_model
from models_inline import build, conv_w

FAST_PROBE = ["--probe-images", "4", "--candidates", "2,4", "--objective", "macs"]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_policy_plan_names_every_site_with_its_settings_or_reason():
    plan = plan_model(net_model(), HashingOptions(hyperplanes=9, seed=5, layer_tiles=(("c2", (2, 2)),)))
    by_site = plan.by_site()
    assert [layer.site for layer in plan.layers] == list(by_site)
    assert {s for s, layer in by_site.items() if layer.replaced} == {"c1", "c2"}
    c1, c2 = by_site["c1"], by_site["c2"]
    assert (c1.settings.hyperplanes, c1.settings.tile, c1.settings.seed) == (9, (4, 4), layer_seed(5, 1))
    assert (c2.settings.tile, c2.pinned, c1.pinned) == ((2, 2), True, False)
    assert all(layer.reason for layer in plan.layers if not layer.replaced)


def test_a_plan_survives_json_and_rewrites_the_same_model():
    model = net_model()
    plan = plan_model(model, HashingOptions(hyperplanes=6))
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    assert rewrite_model(model, again)[0].SerializeToString() == rewrite_model(model, plan)[0].SerializeToString()


def test_save_plan_then_plan_reproduces_the_file_without_probing(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    code, out, err = run(["rewrite", src, tmp_path / "a.onnx", "--save-plan", tmp_path / "plan.json", *FAST_PROBE],
                         capsys)
    assert code == 0, err
    assert "hyperplanes per layer from the synthetic probe" in out and f"wrote the plan to {tmp_path / 'plan.json'}" in out
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["origin"]["rule"] == "budget" and saved["origin"]["probe"]["objective"] == "macs"
    probed = [layer for layer in saved["layers"] if layer.get("probe")]
    assert {layer["site"] for layer in probed} == {"c1", "c2"}  # what the probe measured, per layer
    assert all(layer["probe"]["dense_macs"] > 0 for layer in probed)
    code, out, err = run(["rewrite", src, tmp_path / "b.onnx", "--plan", tmp_path / "plan.json"], capsys)
    assert code == 0, err
    assert "hyperplanes per layer from the" not in out and f"plan from {tmp_path / 'plan.json'} (no probe)" in out
    assert sha256_file(tmp_path / "a.onnx") == sha256_file(tmp_path / "b.onnx")


@pytest.mark.parametrize("change, message", [
    (lambda doc: doc["layers"][1].update(site="renamed"),
     "the plan does not match the model: conv site 2 is 'c1' in the model but 'renamed' in the plan"),
    (lambda doc: doc["layers"][2].update(in_channels=99),
     "the plan does not match the model: 'c2' is Conv 16->24 3x3 in the model but Conv 99->24 3x3 in the plan"),
    (lambda doc: doc["layers"].pop(),
     "the plan does not match the model: the model has 4 conv sites, the plan 3 ('pw' is not in the plan)"),
])
def test_a_plan_for_another_model_is_refused_with_the_first_mismatch(change, message, tmp_path, capsys):
    src, plan_file = tmp_path / "net.onnx", tmp_path / "plan.json"
    onnx.save(net_model(), str(src))
    doc = plan_model(net_model()).to_json()
    change(doc)
    plan_file.write_text(json.dumps(doc))
    code, out, err = run(["rewrite", src, tmp_path / "o.onnx", "--plan", plan_file], capsys)
    assert code == 3 and err == f"haste-onnx rewrite: error: {message}\n"
    assert not (tmp_path / "o.onnx").exists()
    with pytest.raises(PlanMismatch):
        rewrite_model(net_model(), Plan.from_json(doc))


@pytest.mark.parametrize("text, problem", [("{not json", "not a JSON plan"), ('{"layers": []}', "malformed plan"),
                                           (None, "no such plan file")])
def test_a_missing_or_malformed_plan_file_is_an_input_error(text, problem, tmp_path, capsys):
    src, plan_file = tmp_path / "net.onnx", tmp_path / "plan.json"
    onnx.save(net_model(), str(src))
    if text is not None:
        plan_file.write_text(text)
    code, _, err = run(["rewrite", src, tmp_path / "o.onnx", "--plan", plan_file], capsys)
    assert code == 3 and problem in err and len(err.splitlines()) == 1


def test_save_plan_is_atomic_and_load_plan_reads_it_back(tmp_path):
    plan = plan_model(net_model())
    save_plan(plan, tmp_path / "p.json")
    assert load_plan(tmp_path / "p.json") == plan
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temporary file left behind


def test_the_summary_says_exactly_what_was_replaced(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    code, out, _ = run(["rewrite", src, tmp_path / "o.onnx", "-L", "10", "--exclude", "c2"], capsys)
    assert code == 0
    assert "plan: L=10, tile 4x4 on 1 layer(s); 3 Conv layer(s) kept" in out.splitlines()
    assert "else" not in out
    code, out, _ = run(["rewrite", src, tmp_path / "p.onnx", *FAST_PROBE], capsys)
    line = next(text for text in out.splitlines() if text.startswith("plan: "))
    assert "else" not in line and "layer(s)" in line


def test_an_unreached_target_cut_says_what_was_reached(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    code, out, _ = run(["rewrite", src, tmp_path / "o.onnx", "--target-cut", "0.99", "--probe-images", "4",
                        "--candidates", "2,4"], capsys)
    assert code == 0
    line = next(text for text in out.splitlines() if "target 99.0%" in text)
    assert "NOT reached" in line and "cut on the probe" in line


def test_usage_errors_are_one_line_and_name_help(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["rewrite", str(tmp_path / "in.onnx"), str(tmp_path / "o.onnx"), "--bogus"])
    _, err = capsys.readouterr()
    assert exc.value.code == 2
    assert err.splitlines() == ["haste-onnx rewrite: error: unrecognized arguments: --bogus",
                                "(see 'haste-onnx rewrite --help')"]


def test_eval_refuses_seed_with_seeds(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    code, _, err = run(["eval", src, "--seed", "3", "--seeds", "0", "1"], capsys)
    assert code == 2 and err.startswith("haste-onnx eval: error: --seeds and --seed cannot be used together")


def test_a_rewritten_model_keeps_its_layers_under_the_default_plan(tmp_path, capsys):
    once, _ = rewrite_model(net_model(), HashingOptions(hyperplanes=4), Policy(include=["c1"]))
    src = tmp_path / "once.onnx"
    onnx.save(once, str(src))
    code, out, _ = run(["rewrite", src, tmp_path / "twice.onnx", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["summary"]["replaced"] == 0 and doc["summary"]["already_haste"] == 1
    assert {r["node"]: r["reason"] for r in doc["layers"]}["c2"].startswith("the model holds HasteConv already")


def test_plan_text_of_an_inline_model_with_a_repeated_node_name():
    model = build("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,16,8,8] X) => (float[1,16,8,8] Y) {
            A = Conv <pads = [1, 1, 1, 1]> (X, W)
            Y = Conv <pads = [1, 1, 1, 1]> (A, V)
        }""", {"W": conv_w(16, 16), "V": conv_w(16, 16)})
    for node in model.graph.node:
        node.name = "same"
    plan = plan_model(model, HashingOptions(), Policy(allow_first=True))
    assert [layer.site for layer in plan.layers] == ["same", "same#2"]
    rewritten, report = rewrite_model(model, plan)
    assert [r.status for r in report.layers] == ["replaced", "replaced"]
