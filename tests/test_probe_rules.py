"""The probe's default rule: measured time saved (`--objective time`) within an absolute fidelity target.

Timings and fidelity are injected where a test must not depend on this machine's speed.
"""
import json

import numpy as np
import onnx
import pytest

from conftest import net_model
from haste_onnx import cli
from haste_onnx.plan import plan_model
from haste_onnx.probe import allocate, planner
from haste_onnx.probe.allocation import Allocation, time_value
from haste_onnx.probe.fidelity import FidelityCheck, FidelityTarget, compare
from haste_onnx.probe.images import synthetic_probe
from haste_onnx.probe.knapsack import choose_within
from haste_onnx.probe.layer_time import TimingContext, measurably_faster
from haste_onnx.probe.layers import LayerProbe

CHOICE = (4, (4, 4))


def timed(node, conv_ms, haste_ms, p25, disturbance=0.01, macs=1000.0):
    probe = LayerProbe(node, 5000.0, choices={CHOICE: (disturbance, macs)})
    probe.conv_ms = [conv_ms]
    probe.times[CHOICE] = {"ms": haste_ms, "ratio": {"median": conv_ms / haste_ms, "p25": p25, "p75": p25}}
    return probe


def test_a_layer_made_slower_is_kept_as_conv_with_its_timings():
    fast, slow = timed("fast", 2.0, 1.0, 1.8), timed("slow", 1.0, 2.0, 0.5)
    assert measurably_faster(fast.times[CHOICE]) and not measurably_faster(slow.times[CHOICE])
    assert time_value(fast, CHOICE) == pytest.approx(1.0) and time_value(slow, CHOICE) is None
    layers, _, _ = choose_within([fast, slow], 10000.0, 1.0, value=time_value, total=3.0)
    assert layers == {"fast": CHOICE, "slow": None}
    allocation = Allocation(layers, [fast, slow], None, 10000.0, 0.1, 0.01, "synthetic", objective="time",
                            timing=TimingContext().to_json())
    assert allocation.dense_reason("slow") == ("not faster than onnxruntime's Conv on this machine (1.000 ms as Conv, "
                                               "2.000 ms at best as HasteConv)")
    assert allocation.time_saved_ms() == pytest.approx(1.0)
    doc = allocation.to_json()
    assert doc["measurements"][1]["conv_ms"] == 1.0 and doc["measurements"][1]["choices"]["L=4 tile=4x4"]["ms"] == 2.0


def test_a_layer_that_is_not_measurably_faster_is_not_a_choice_even_when_its_median_is():
    noisy = timed("noisy", 1.0, 0.95, 0.9)  # faster on the median, slower in more than a quarter of the pairs
    assert time_value(noisy, CHOICE) is None


def test_nothing_faster_is_nothing_to_do_with_the_reason():
    slow = timed("slow", 1.0, 2.0, 0.5)
    allocation = Allocation({"slow": None}, [slow], None, 10000.0, 0.0, 0.0, "synthetic", objective="time",
                            timing=TimingContext().to_json())
    assert allocation.nothing_to_do().startswith("no layer runs faster as HasteConv than as onnxruntime's Conv")


def flips_when(layer_name):
    """A FidelityCheck.measure that reports flipped predictions whenever `layer_name` is HasteConv."""
    real = FidelityCheck.measure

    def measure(self, rewritten):
        result = real(self, rewritten)
        if any(n.name == layer_name and n.op_type == "HasteConv" for n in rewritten.graph.node):
            result = {**result, "top1_agreement": 0.5}
        return result
    return measure


def test_a_layer_that_flips_predictions_is_kept_dense(monkeypatch):
    model = net_model()
    monkeypatch.setattr(FidelityCheck, "measure", flips_when("c1"))
    allocation = allocate(model, plan_model(model), rule="fidelity", objective="macs", candidates=(4, 8),
                          threads=1, images=synthetic_probe(model, 8), fidelity=FidelityTarget(0.99, 10.0))
    assert allocation.layers["c1"] is None and allocation.layers["c2"] is not None
    assert allocation.fidelity["top1_agreement"] >= 0.99
    assert allocation.search and any(not s["met"] for s in allocation.search)  # it tried c1 and stepped back
    plan = allocation.apply_to(plan_model(model))
    assert plan.layer("c1").reason == "left dense by the probe: the fidelity target allows no more"


def test_an_unreachable_fidelity_target_exits_5_with_a_clear_message(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    code = cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), "--objective", "macs", "--max-error", "0",
                     "--probe-images", "4", "--candidates", "4,8"])
    out, err = capsys.readouterr()
    assert code == 5 and not (tmp_path / "o.onnx").exists()
    assert err == ("haste-onnx rewrite: error: nothing to do: no layer can be replaced within the fidelity target "
                   "(top-1 agreement >= 99.0%, relative output error <= 0.0); --min-agreement/--max-error loosen it\n")


def test_the_fidelity_rule_meets_its_target_on_the_final_model(tmp_path, capsys):
    src, out = tmp_path / "net.onnx", tmp_path / "o.onnx"
    onnx.save(net_model(), str(src))
    code = cli.main(["rewrite", str(src), str(out), "--objective", "macs", "--max-error", "0.5",
                     "--min-agreement", "0.9", "--probe-images", "16", "--candidates", "2,4,8", "--json"])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0
    alloc = doc["allocation"]
    assert alloc["rule"] == "fidelity" and alloc["fidelity_target"] == {"min_top1_agreement": 0.9,
                                                                        "max_relative_error": 0.5}
    assert alloc["fidelity"]["top1_agreement"] >= 0.9
    assert all(e["mean"] <= 0.5 for e in alloc["fidelity"]["relative_error"].values())
    # measured again, independently, on the written model
    model = onnx.load(str(src))
    images = synthetic_probe(model, 16)
    again = FidelityCheck(model, images, 1).measure(onnx.load(str(out)))
    assert again["top1_agreement"] == alloc["fidelity"]["top1_agreement"]


def test_the_speed_check_gives_the_least_saving_layer_back_until_not_slower(monkeypatch):
    model = net_model()
    plan = plan_model(model)
    probes = [timed("c1", 2.0, 1.0, 1.5), timed("c2", 2.0, 1.9, 1.02)]
    allocation = Allocation({"c1": CHOICE, "c2": CHOICE}, probes, None, 10000.0, 0.1, 0.01, "synthetic",
                            objective="time", timing=TimingContext().to_json())
    seen = []

    def fake_time_models(original, rewritten, images, timing):
        replaced = sorted(n.name for n in rewritten.graph.node if n.op_type == "HasteConv")
        seen.append(replaced)
        slower = "c2" in replaced  # with c2 the whole model is slower
        return {"original_ms": 1.0, "rewritten_ms": 1.1 if slower else 0.9,
                "ratio": {"median": 0.9 if slower else 1.1, "p25": 0.85 if slower else 1.05, "p75": 1.0}}

    monkeypatch.setattr(planner, "time_models", fake_time_models)
    checked = planner.speed_check(model, plan, allocation, synthetic_probe(model, 2), TimingContext())
    assert seen == [["c1", "c2"], ["c1"]]
    assert checked.layers == {"c1": CHOICE, "c2": None} and checked.speed["given_back"] == ["c2"]
    assert checked.estimated_cut == pytest.approx(1000.0 / 10000.0)  # what is left, not what was chosen first


def test_fidelity_compares_classes_and_relative_error():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.2], [1.0, 0.5]])
    result = compare([a], [b], ["logits"])
    assert result["top1_agreement"] == 0.5
    assert result["relative_error"]["logits"]["max"] == pytest.approx(np.hypot(1.0, 0.5))
    assert FidelityTarget(0.5, 2.0).met(result) and not FidelityTarget(0.6, 2.0).met(result)


def test_objective_macs_alone_is_the_relative_rule(tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    args = ["--probe-images", "4", "--candidates", "2,4", "--json", "--no-load-check"]
    assert cli.main(["rewrite", str(src), str(tmp_path / "a.onnx"), "--objective", "macs", *args]) == 0
    by_macs = json.loads(capsys.readouterr()[0])["allocation"]
    assert cli.main(["rewrite", str(src), str(tmp_path / "b.onnx"), "--objective", "macs", "--probe-budget", "13",
                     *args]) == 0
    by_budget = json.loads(capsys.readouterr()[0])["allocation"]
    assert by_macs["rule"] == by_budget["rule"] == "budget" and by_macs["budget_hyperplanes"] == 13
    assert by_macs["layers"] == by_budget["layers"]
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
