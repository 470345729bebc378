"""Hyperplanes per layer from a probe (`haste_onnx.allocate`, `--target-cut`)."""
import fnmatch
import itertools
import json

import numpy as np
import onnx
import pytest

from haste_onnx import cli
from haste_onnx.measure.instrument import add_stats_outputs
from haste_onnx.measure.predictor import Predictor
from haste_onnx.op.stats import STATS_FIELDS
from haste_onnx.plan import Policy, plan_model
from haste_onnx.probe.allocation import Allocation, allocate
from haste_onnx.probe.disturbance import output_disturbance
from haste_onnx.probe.images import default_probe_count, synthetic_probe
from haste_onnx.probe.knapsack import choose, choose_within
from haste_onnx.probe.layers import LayerProbe, probe_layers
from haste_onnx.rewrite import HashingOptions, rewrite_model
from conftest import net_model


def test_synthetic_probe_is_seeded_smooth_noise_with_dark_regions():
    model = net_model(32, 24)
    a = synthetic_probe(model, 64, mean=(0.5,), std=(0.25,))
    assert a.shape == (64, 1, 32, 24) and a.dtype == np.float32
    np.testing.assert_array_equal(a, synthetic_probe(model, 64, mean=(0.5,), std=(0.25,)))
    assert not np.array_equal(a, synthetic_probe(model, 64, mean=(0.5,), std=(0.25,), seed=1))
    pixels = a.astype(np.float64) * 0.25 + 0.5
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert np.allclose(pixels.max(axis=(1, 2, 3)), 1.0, atol=1e-5)  # every image is stretched to [0, 1]
    dark = (pixels < 1e-6).mean(axis=(1, 2, 3))
    assert dark.min() < 0.1 < 0.3 < dark.max()  # from hardly any dark pixels to large dark regions
    # A 1/f^2 amplitude spectrum: neighbours are far more alike than in white noise, and much of the
    # power (mean removed) sits in the lowest spatial frequencies.
    centred = pixels - pixels.mean(axis=(2, 3), keepdims=True)
    corr = (centred[:, :, 1:, :] * centred[:, :, :-1, :]).sum() / (centred ** 2).sum()
    assert corr > 0.4  # white noise: about 0
    power = np.abs(np.fft.fft2(centred)) ** 2
    low = (np.abs(np.fft.fftfreq(32))[:, None] <= 2 / 32) & (np.abs(np.fft.fftfreq(24))[None, :] <= 2 / 24)
    assert power[:, :, low].sum() > 0.3 * power.sum()  # 25 of 768 frequencies: about 3% for white noise


def test_synthetic_probe_rejects_unknown_noise():
    with pytest.raises(ValueError, match="unknown probe noise 'white'"):
        synthetic_probe(net_model(12, 10), 2, noise="white")


def test_synthetic_blocky_probe_is_seeded_blocky_normalised_noise():
    model = net_model(12, 10)
    a = synthetic_probe(model, 5, mean=(0.5,), std=(0.25,), noise="blocky")
    assert a.shape == (5, 1, 12, 10) and a.dtype == np.float32
    np.testing.assert_array_equal(a, synthetic_probe(model, 5, mean=(0.5,), std=(0.25,), noise="blocky"))
    assert not np.array_equal(a, synthetic_probe(model, 5, mean=(0.5,), std=(0.25,), seed=1, noise="blocky"))
    pixels = a * 0.25 + 0.5
    assert pixels.min() >= 0 and pixels.max() <= 1
    blocks = pixels[:, :, :12:4, :10:4]  # every 4x4 block is one value
    np.testing.assert_allclose(pixels, np.repeat(np.repeat(blocks, 4, 2), 4, 3)[:, :, :12, :10], rtol=0, atol=1e-6)
    assert len(np.unique(blocks)) == blocks.size  # and the blocks differ


def test_output_disturbance():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 10))
    assert output_disturbance(logits, logits) == pytest.approx(0, abs=1e-12)
    assert output_disturbance(logits, logits + 3.0) == pytest.approx(0, abs=1e-12)  # softmax ignores shifts
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    q_logits = logits + rng.normal(size=logits.shape)
    q = np.exp(q_logits) / np.exp(q_logits).sum(1, keepdims=True)
    assert output_disturbance(logits, q_logits) == pytest.approx(np.mean(np.sum(p * np.log(p / q), 1)))
    maps = rng.normal(size=(2, 3, 4, 4))
    assert output_disturbance(maps, 1.1 * maps) == pytest.approx(0.01)


def _probes(table):
    return [LayerProbe(name, 100.0, {L: ds for L, ds in choices.items()}) for name, choices in table.items()]


def _every_choice(probes):
    """(combo, summed saving, summed disturbance) for every way to choose, dense (None) included."""
    for combo in itertools.product(*[[None] + sorted(p.choices) for p in probes]):
        chosen = [p.choices[L] for p, L in zip(probes, combo) if L is not None]
        yield combo, sum(s for _, s in chosen), sum(d for d, _ in chosen)


def _best_by_brute_force(probes, need):
    best = None
    for combo, saved, dist in _every_choice(probes):
        if saved >= need and (best is None or dist < best[0] - 1e-12):
            best = (dist, combo)
    return best


THREE_LAYERS = {
    "cheap": {16: (0.001, 10.0), 12: (0.003, 20.0), 8: (0.009, 30.0)},
    "dear": {16: (0.004, 10.0), 12: (0.012, 20.0), 8: (0.036, 30.0)},
    "middle": {16: (0.002, 10.0), 12: (0.006, 20.0), 8: (0.018, 30.0)},
}


def test_choose_reaches_the_target_with_the_least_disturbance():
    probes = _probes(THREE_LAYERS)
    for target in (0.05, 0.2, 0.3, 0.5, 0.6, 0.8):
        choice, cut, dist = choose(probes, 100.0, target)
        assert cut >= target - 1e-9
        chosen = [choice[p.node] for p in probes]
        assert dist == pytest.approx(sum(p.choices[L][0] for p, L in zip(probes, chosen) if L is not None))
        best = _best_by_brute_force(probes, target * 100.0)
        assert dist == pytest.approx(best[0]), (target, chosen, best)
    choice, _, _ = choose(probes, 100.0, 0.2)
    assert choice == {"cheap": 12, "dear": None, "middle": None}
    rng = np.random.default_rng(0)
    for _ in range(200):  # random tables against brute force
        probes = [LayerProbe(f"l{i}", 100.0, {L: (float(rng.random()), float(rng.integers(-5, 40)))
                                              for L in rng.choice([4, 8, 12, 16], rng.integers(1, 4), replace=False)})
                  for i in range(4)]
        target = float(rng.uniform(0.01, 0.9))
        choice, cut, dist = choose(probes, 100.0, target)
        best = _best_by_brute_force(probes, target * 100.0)
        if best is None:
            assert all(choice[p.node] is None or p.choices[choice[p.node]][1] == max(s for _, s in p.choices.values())
                       for p in probes)
        else:
            assert cut >= target - 1e-9 and dist == pytest.approx(best[0])


def test_choose_when_the_target_is_out_of_reach_takes_every_positive_saving():
    probes = _probes({"a": {8: (0.01, 30.0), 12: (0.001, 10.0)}, "b": {8: (0.02, -5.0)}})
    choice, cut, _ = choose(probes, 100.0, 0.9)
    assert choice == {"a": 8, "b": None} and cut == pytest.approx(0.3)


def _most_saving_by_brute_force(probes, budget):
    best = None
    for combo, saved, dist in _every_choice(probes):
        if dist <= budget + 1e-12 and (best is None or saved > best[0]):
            best = (saved, combo)
    return best


def test_choose_within_saves_the_most_for_the_budget():
    probes = _probes(THREE_LAYERS)
    budget = sum(THREE_LAYERS[n][12][0] for n in THREE_LAYERS)  # one L=12 everywhere: 60 saved for 0.021
    choice, cut, dist = choose_within(probes, 100.0, budget)
    # 60 is the most within the budget (70 would need 0.027); of the ways to save 60, the least disturbing
    assert cut == pytest.approx(0.6) and dist == pytest.approx(0.019)
    assert choice == {"cheap": 8, "dear": 16, "middle": 12}
    assert choose_within(probes, 100.0, 0.0)[0] == {"cheap": None, "dear": None, "middle": None}
    rng = np.random.default_rng(1)
    for _ in range(200):  # random tables against brute force; savings on the DP's grid (100 / 4000 steps)
        probes = [LayerProbe(f"l{i}", 100.0, {L: (float(rng.random()), float(rng.integers(-5, 40)))
                                              for L in rng.choice([4, 8, 12, 16], rng.integers(1, 4), replace=False)})
                  for i in range(4)]
        budget = float(rng.uniform(0.0, 2.0))
        choice, cut, dist = choose_within(probes, 100.0, budget)
        best = _most_saving_by_brute_force(probes, budget)
        assert dist <= budget + 1e-12 and cut * 100.0 == pytest.approx(max(best[0], 0.0))


def test_probe_images_shrink_with_the_input_size():
    assert default_probe_count(net_model(32, 32)) == 64
    assert default_probe_count(net_model(12, 12)) == 64
    assert default_probe_count(net_model(64, 64)) == 16
    assert default_probe_count(net_model(224, 224)) == 8  # at least 8


def test_plan_sites_are_unique_when_node_names_repeat():
    from haste_onnx.plan.build import site_keys

    class Site:
        def __init__(self, name):
            self.name = name

    assert site_keys([Site("a"), Site("b"), Site("a"), Site("a")]) == ["a", "b", "a#2", "a#3"]


def test_probe_measures_each_layer_alone_with_the_kernel_counters():
    model = net_model()
    images = synthetic_probe(model, 4)
    probes, conv_macs = probe_layers(model, images, plan_model(model), candidates=(4, 64), threads=1,
                                     tiles=[(4, 4), (2, 3)])
    assert [p.node for p in probes] == ["c1", "c2"]
    assert conv_macs == 12 * 12 * 9 * (16 + 16 * 16 + 16 * 24) + 12 * 12 * 24 * 24
    reference = Predictor(model, 1).run(images)[0]
    for p in probes:
        assert p.dense_macs == 12 * 12 * 9 * 16 * (16 if p.node == "c1" else 24)
        # independently: rewrite that layer alone, run it, read its counters
        assert set(p.choices) == {(L, t) for L in (4, 64) for t in ((4, 4), (2, 3))}
        for tile in ((4, 4), (2, 3)):
            rewritten, _ = rewrite_model(model, HashingOptions(hyperplanes=4, tile=tile), Policy(include=[p.node]))
            measured, pairs = add_stats_outputs(rewritten)
            out = Predictor(measured, 1, pairs).run(images)
            c = dict(zip(STATS_FIELDS, np.asarray(out[1]).reshape(-1).tolist()))
            saved = (c["dense_macs"] - c["haste_macs"] - c["centering_ops"] - c["hashing_ops"] - c["merge_ops"]) / 4
            assert p.choices[(4, tile)] == (pytest.approx(output_disturbance(reference, out[0])), pytest.approx(saved))
            assert p.choices[(4, tile)][1] > p.choices[(64, tile)][1]  # fewer hyperplanes merge more
            assert p.choices[(64, tile)][1] < 0  # nothing merges at L=64: only the overheads remain


def test_allocate_then_rewrite_uses_the_chosen_counts():
    model = net_model()
    allocation = allocate(model, plan_model(model), 0.05, candidates=(2, 4, 8), threads=1,
                          tiles=[(4, 4), (2, 2)])
    assert set(allocation.layers) == {"c1", "c2"}
    assert allocation.estimated_cut >= 0.05
    _, report = rewrite_model(model, allocation.apply_to(plan_model(model)))
    got = {r.node: ((r.settings["hyperplanes"], tuple(r.settings["tile"])) if r.status == "replaced" else None)
           for r in report.layers if r.node in ("c1", "c2")}
    assert got == allocation.layers
    for r in report.layers:
        if r.node in allocation.layers and allocation.layers[r.node] is None:
            assert r.reason.startswith("left dense by the probe")


def test_cli_rewrite_with_target_cut(tmp_path, capsys):
    src, out = tmp_path / "net.onnx", tmp_path / "out.onnx"
    onnx.save(net_model(), str(src))
    code = cli.main(["rewrite", str(src), str(out), "--json", "--target-cut", "0.05", "--candidates", "2,4,8",
                     "--probe-images", "4", "--candidate-tiles", "4,3"])
    text, _ = capsys.readouterr()
    assert code == 0
    doc = json.loads(text)
    alloc = doc["allocation"]
    assert alloc["probe"] == "synthetic" and alloc["target_cut"] == 0.05
    assert set(alloc["layers"]) == {"c1", "c2"}
    assert all(set(m["choices"]) == {f"L={L} tile={t}" for L in (2, 4, 8) for t in ("4x4", "3x3")}
               for m in alloc["measurements"])
    model = onnx.load(str(out))
    planes = {i.name: i for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    for name, chosen in alloc["layers"].items():
        if chosen is not None:
            assert planes[f"{name}.hyperplanes"].dims[0] == chosen["hyperplanes"]
            tile = next(a for a in nodes[name].attribute if a.name == "tile")
            assert list(tile.ints) == chosen["tile"]


@pytest.mark.parametrize("args", [["--target-cut", "0"], ["--target-cut", "1"], ["--candidates", "0,4"],
                                  ["--candidates", "x"], ["--probe", "imagenet"], ["--probe-images", "0"],
                                  ["--candidate-tiles", "4,0"], ["--layer-tile", "c1"], ["--layer-tile", "c1=0"]])
def test_allocation_usage_errors_exit_2(args, tmp_path):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    with pytest.raises(SystemExit) as exc:
        cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), *args])
    assert exc.value.code == 2
    assert not (tmp_path / "o.onnx").exists()


def test_a_fixed_batch_model_is_probed_in_batches_of_its_size():
    model = net_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # batch fixed to 1
    fixed = synthetic_probe(model, 3)
    probes, _ = probe_layers(model, fixed, plan_model(model), candidates=(4,), threads=1)
    free, _ = probe_layers(net_model(), fixed, plan_model(net_model()), candidates=(4,), threads=1)
    for a, b in zip(probes, free):
        assert a.choices[(4, (4, 4))] == (pytest.approx(b.choices[(4, (4, 4))][0], rel=1e-4, abs=1e-9),
                                          pytest.approx(b.choices[(4, (4, 4))][1]))


def test_a_model_with_a_symbolic_image_size_is_probed_at_a_stated_size(tmp_path, capsys):
    model = net_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    src = tmp_path / "dyn.onnx"
    onnx.save(model, str(src))
    code = cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), "--target-cut", "0.1", "--json",
                     "--probe-images", "4", "--candidates", "2,4"])
    alloc = json.loads(capsys.readouterr()[0])["allocation"]
    assert code == 0 and "1x1x12x12" in alloc["inputs"] and "12x12: a free side, made square" in alloc["inputs"]
    assert alloc["conv_macs"] == 12 * 12 * 9 * (16 + 16 * 16 + 16 * 24) + 12 * 12 * 24 * 24  # from the fixed size
    assert (tmp_path / "o.onnx").exists()


def test_the_relative_rule_saves_more_than_one_l_for_no_more_disturbance(tmp_path, capsys):
    """`--objective macs` alone: the previous default, MACs within the disturbance of one L=13 everywhere."""
    src, out = tmp_path / "net.onnx", tmp_path / "out.onnx"
    onnx.save(net_model(16, 16), str(src))
    code = cli.main(["rewrite", str(src), str(out), "--json", "--probe-images", "8", "--candidates", "2,4,8",
                     "--objective", "macs"])
    text, err = capsys.readouterr()
    assert code == 0 and err == ""
    alloc = json.loads(text)["allocation"]
    assert alloc["rule"] == "budget" and alloc["target_cut"] is None and alloc["budget_hyperplanes"] == 13
    assert all("L=13 tile=4x4" in m["choices"] for m in alloc["measurements"])  # the budget's L is always probed
    # the budget: one L=13 everywhere, its disturbance averaged over the seed's own draw and 3 others
    assert alloc["budget_draws"] == 4
    draws = [[c["disturbance"]] + c["other_draws"] for c in (m["choices"]["L=13 tile=4x4"] for m in alloc["measurements"])]
    assert all(len(d) == 4 and len(set(d)) > 1 for d in draws)  # other hyperplanes disturb otherwise
    assert alloc["budget_disturbance"] == pytest.approx(sum(sum(d) / 4 for d in draws))
    assert alloc["estimated_disturbance"] <= alloc["budget_disturbance"] * (1 + 1e-9)
    model = onnx.load(str(out))
    planes = {i.name: i for i in model.graph.initializer}
    for name, chosen in alloc["layers"].items():
        if chosen is not None:
            assert planes[f"{name}.hyperplanes"].dims[0] == chosen["hyperplanes"]
    code = cli.main(["rewrite", str(src), str(tmp_path / "o2.onnx"), "--probe-images", "8", "--candidates", "2,4,8",
                     "--probe-budget", "4", "--objective", "macs"])
    text, _ = capsys.readouterr()
    assert code == 0 and "for no more disturbance than L=4 in every layer (mean of 4 draws)" in text
    # one draw: the seed's own hyperplanes alone set the budget, so one L everywhere fits it and the rule saves more
    code = cli.main(["rewrite", str(src), str(tmp_path / "o3.onnx"), "--json", "--probe-images", "8",
                     "--candidates", "2,4,8", "--budget-draws", "1", "--objective", "macs"])
    alloc = json.loads(capsys.readouterr()[0])["allocation"]
    assert code == 0 and alloc["budget_draws"] == 1
    assert all("other_draws" not in c for m in alloc["measurements"] for c in m["choices"].values())
    assert alloc["budget_disturbance"] == pytest.approx(
        sum(m["choices"]["L=13 tile=4x4"]["disturbance"] for m in alloc["measurements"]))
    assert alloc["estimated_cut"] >= alloc["uniform_cut"] - 1e-9


def test_the_default_rewrite_falls_back_to_one_l_when_the_probe_cannot_run(tmp_path, capsys):
    model = net_model()  # fed flat images [N, 144], reshaped inside: the probe cannot make its images
    model.graph.input[0].name = "flat"
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 144
    del model.graph.input[0].type.tensor_type.shape.dim[2:]
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1, 1, 12, 12], np.int64), "to_image"))
    model.graph.node.insert(0, onnx.helper.make_node("Reshape", ["flat", "to_image"], ["input"], name="reshape"))
    src, out = tmp_path / "dyn.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    code = cli.main(["rewrite", str(src), str(out)])
    text, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert ("one L=14 for every layer: no probe (input flat is float32[N,144]; the probe and compare feed images "
            "[N,C,H,W] or [N,H,W,C])") in text
    planes = [i for i in onnx.load(str(out)).graph.initializer if i.name.endswith(".hyperplanes")]
    assert planes and all(p.dims[0] == 14 for p in planes)


@pytest.mark.parametrize("args, problem", [
    (["-L", "10", "--probe-budget", "12"],
     "--hyperplanes/-L and --probe-budget cannot be used together: without a probe the probe's options have no use"),
    (["--no-probe", "--probe-budget", "12"], "--no-probe and --probe-budget cannot be used together"),
    (["--no-probe", "--budget-draws", "2"], "--no-probe and --budget-draws cannot be used together"),
    (["--target-cut", "0.3", "--probe-budget", "12"],
     "--target-cut and --probe-budget cannot be used together: the target rule has no budget"),
    (["--no-probe", "--target-cut", "0.2"], "--target-cut and --no-probe cannot be used together"),
    # each of these used to exit 0 and silently ignore one side
    (["-L", "10", "--target-cut", "0.2"],
     "--target-cut and --hyperplanes/-L cannot be used together: the target rule chooses L per layer itself"),
    (["-L", "10", "--candidates", "4,8"], "--hyperplanes/-L and --candidates cannot be used together"),
    (["--no-probe", "--probe", "synthetic-blocky"], "--no-probe and --probe cannot be used together"),
    (["--no-probe", "--probe-images", "8"], "--no-probe and --probe-images cannot be used together"),
    (["-L", "10", "--candidate-tiles", "2,4"], "--hyperplanes/-L and --candidate-tiles cannot be used together"),
    (["--plan", "p.json", "-L", "10"], "--plan and --hyperplanes/-L cannot be used together"),
    (["--plan", "p.json", "--exclude", "c1"], "--plan and --exclude cannot be used together"),
    (["--plan", "p.json", "--target-cut", "0.2"], "--plan and --target-cut cannot be used together")])
def test_contradicting_probe_options_exit_2(args, problem, tmp_path, capsys):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    code = cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), *args])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith(f"haste-onnx rewrite: error: {problem}") and len(err.splitlines()) == 1
    assert not (tmp_path / "o.onnx").exists()


def test_without_the_op_library_the_default_uses_one_l_and_a_target_cut_fails(tmp_path, capsys, monkeypatch):
    import haste_onnx.runtime

    def missing():
        raise haste_onnx.runtime.LibraryNotFoundError("the HasteConv op library is not installed at /x")

    monkeypatch.setattr(haste_onnx.runtime, "get_library_path", missing)
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    code = cli.main(["rewrite", str(src), str(tmp_path / "a.onnx"), "--no-load-check"])
    text, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "one L=14 for every layer: no probe (the HasteConv op library is not installed at /x)" in text
    code = cli.main(["rewrite", str(src), str(tmp_path / "b.onnx"), "--no-load-check", "--target-cut", "0.1"])
    _, err = capsys.readouterr()
    assert code == 6 and err.strip() == "haste-onnx rewrite: error: the HasteConv op library is not installed at /x"
    assert not (tmp_path / "b.onnx").exists()


def test_a_target_cut_on_a_rewritten_model_probes_the_layers_still_eligible(tmp_path, capsys):
    src, once, twice = tmp_path / "net.onnx", tmp_path / "once.onnx", tmp_path / "twice.onnx"
    onnx.save(net_model(), str(src))
    assert cli.main(["rewrite", str(src), str(once), "--no-probe", "--exclude", "c2"]) == 0
    capsys.readouterr()
    assert cli.main(["rewrite", str(once), str(twice), "--json", "--target-cut", "0.01", "--candidates", "2,4",
                     "--probe-images", "4"]) == 0
    doc = json.loads(capsys.readouterr()[0])
    assert set(doc["allocation"]["layers"]) == {"c2"}  # c1 is HasteConv already
    assert doc["summary"]["already_haste"] == 1


def test_layers_named_by_hand_keep_their_l_under_the_probe():
    allocation = Allocation({"c1": None, "c2": (4, (4, 4))}, [], None, 100.0, 0.1, 0.01, "synthetic")
    pinned = plan_model(net_model(), HashingOptions(layer_hyperplanes=(("c[12]", 9),)))
    _, report = rewrite_model(net_model(), allocation.apply_to(pinned))
    got = {r.node: (r.status, r.settings and r.settings["hyperplanes"]) for r in report.layers if r.node in ("c1", "c2")}
    assert got == {"c1": ("replaced", 9), "c2": ("replaced", 9)}  # the hand's L wins, and c1 is not left dense
    _, report = rewrite_model(net_model(), allocation.apply_to(plan_model(net_model())))
    got = {r.node: (r.status, r.settings and r.settings["hyperplanes"]) for r in report.layers if r.node in ("c1", "c2")}
    assert got == {"c1": ("kept", None), "c2": ("replaced", 4)}


def test_a_model_with_several_inputs_gets_one_l_by_default(tmp_path, capsys):
    model = net_model()
    model.graph.input.append(onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, [1]))
    src, out = tmp_path / "two.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    code = cli.main(["rewrite", str(src), str(out)])
    text, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert ("one L=14 for every layer: no probe (the probe and compare feed one image input (input); this model also "
            "takes extra (float32[1], not an image))") in text


def test_the_probe_reads_the_counters_of_the_probed_layer_when_others_are_haste_already():
    model, _ = rewrite_model(net_model(), HashingOptions(hyperplanes=4), Policy(include=["c1"]))
    probes, _ = probe_layers(model, synthetic_probe(model, 4), plan_model(model), candidates=(4, 8), threads=1)
    assert [p.node for p in probes] == ["c2"]
    assert probes[0].dense_macs == 16 * 24 * 9 * 12 * 12  # c2's MACs per image, not c1's (16 * 16 * 9 * 12 * 12)


def test_eval_with_several_seeds_probes_each_seed_as_rewrite_would(tmp_path, capsys):
    from conftest import fake_fashion_mnist

    data = fake_fashion_mnist(tmp_path / "fm", n_test=12)
    src = tmp_path / "net.onnx"
    onnx.save(net_model(32, 32), str(src))
    common = ["--data", "fashion-mnist", "--data-dir", str(data), "--probe-images", "4", "--candidates", "2,4,8",
              "--threads", "1", "--objective", "macs"]  # MACs: deterministic, where measured times are not
    assert cli.main(["eval", str(src), "--seeds", "0", "3", "--json", *common]) == 0
    runs = json.loads(capsys.readouterr()[0])["runs"]
    assert [r["seed"] for r in runs] == [0, 3]
    for r in runs:  # the same choice, and the same accuracy, as probing and rewriting with that seed alone
        assert cli.main(["eval", str(src), "--seed", str(r["seed"]), "--json", *common]) == 0
        alone = json.loads(capsys.readouterr()[0])
        assert r["allocation"] == alone["allocation"]
        assert r["accuracy"] == alone["runs"][0]["accuracy"]
    assert runs[0]["allocation"]["measurements"] != runs[1]["allocation"]["measurements"]  # other hyperplanes
