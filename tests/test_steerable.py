"""Steerable models (issue #19, docs/steerable.md): nested hyperplanes, one model with a level per call, the tools."""
import json
import threading

import numpy as np
import onnx
import pytest

from haste_onnx import cli
from haste_onnx.check import check_model
from haste_onnx.op.hyperplanes import draw_hyperplanes
from haste_onnx.op.level import LEVEL_INPUT, choose_level
from haste_onnx.op.reference import hash_codes
from haste_onnx.plan import HashingOptions, Policy, plan_model
from haste_onnx.probe.knapsack import choose_share
from haste_onnx.probe.layers import LayerProbe
from haste_onnx.rewrite import rewrite_model, strip_model
from haste_onnx.rewrite.graphs import walk_scopes
from haste_onnx.rewrite.steer import level_info, select_level, steer_model
from haste_onnx.runtime import inference_session
from conftest import fake_fashion_mnist, net_model

LEVELS = (0.4, 1.0)  # level 0 (the original) is always offered


def run(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit:  # argparse's refusals
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def net_plans(model):
    """Two levels of one L per layer: 12 at 0.4, 5 at 1."""
    return [(level, plan_model(model, HashingOptions(hyperplanes=count, seed=3), Policy(min_channels=1)))
            for level, count in zip(LEVELS, (12, 5))]


@pytest.fixture(scope="module")
def steered():
    original = net_model(12, 12)
    plans = net_plans(original)
    model, _ = steer_model(original, plans, default_level=0.4)
    return original, plans, model


def images(n=6, seed=2):
    return np.random.default_rng(seed).normal(size=(n, 1, 12, 12)).astype(np.float32)


def run_level(session, x, level=None):
    feed = {"input": x} if level is None else {"input": x, LEVEL_INPUT: np.array(level, np.float32)}
    return session.run(None, feed)[0]


# ---- 1. nested hyperplanes -------------------------------------------------------------------------

@pytest.mark.parametrize("dim,sparsity,seed", [(36, 2 / 3, 0), (49, 0.5, 12345), (16, 0.0, 7)])
def test_fewer_hyperplanes_are_a_prefix_of_more(dim, sparsity, seed):
    full = draw_hyperplanes(64, dim, sparsity, seed)
    for count in (1, 5, 13, 20, 63):
        np.testing.assert_array_equal(draw_hyperplanes(count, dim, sparsity, seed), full[:count])


def test_codes_at_fewer_hyperplanes_are_prefixes_and_groups_unions():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 40, 36)).astype(np.float32)  # 3 tiles, 40 channels, a 6x6 patch each
    codes = {count: hash_codes(vectors, draw_hyperplanes(count, 36, 2 / 3, 11), centering=True)
             for count in (6, 13, 20)}
    for short, long in ((6, 13), (13, 20), (6, 20)):
        mask = np.uint64((1 << short) - 1)
        np.testing.assert_array_equal(codes[short], codes[long] & mask)
        for tile in range(3):  # channels that share the long code share the short one
            for code in np.unique(codes[long][tile]):
                members = codes[long][tile] == code
                assert len(np.unique(codes[short][tile][members])) == 1
    assert any(len(np.unique(codes[6][t])) < len(np.unique(codes[20][t])) for t in range(3))


# ---- 2. one model, a level per call ------------------------------------------------------------------

def test_steerable_model_passes_the_checker_and_each_branch_holds_its_weights(steered):
    original, plans, model = steered
    check_model(model)
    assert [i.name for i in model.graph.input] == ["input", LEVEL_INPUT]
    assert [o.name for o in model.graph.output] == [o.name for o in original.graph.output]
    weights = {i.name for i in original.graph.initializer}
    branches = [s for s in walk_scopes(model.graph) if s.path and any(n.op_type != "If" for n in s.graph.node)]
    assert len(branches) == 3
    for scope in branches:  # every branch is a model of its own: onnxruntime optimises its Convs as such
        assert weights <= {i.name for i in scope.graph.initializer}
    assert not weights & {i.name for i in model.graph.initializer}
    info = level_info(model)
    assert [e["level"] for e in info["levels"]] == [0.0, *LEVELS] and info["default"] == 0.4
    assert [e["replaced"] for e in info["levels"]] == [0, 2, 2]


def test_on_disk_the_weights_are_stored_once(steered, tmp_path):
    from haste_onnx.model_io import load_model, save_model

    original, plans, model = steered
    save_model(model, tmp_path / "steer.onnx", deduplicate=True)
    plain, _ = rewrite_model(original, plans[-1][1])
    save_model(plain, tmp_path / "plain.onnx", external_data=True)
    files = {name: (tmp_path / name).stat().st_size for name in ("steer.onnx", "steer.onnx.data", "plain.onnx",
                                                                 "plain.onnx.data")}
    weight_bytes = sum(len(i.raw_data) for i in original.graph.initializer if len(i.raw_data) >= 1024)
    padding = 4096 * len(original.graph.initializer)  # each distinct tensor starts on a page
    assert weight_bytes <= files["steer.onnx.data"] < weight_bytes + padding  # once, not once per level
    assert files["steer.onnx"] < 0.5 * weight_bytes  # the graph and references only
    loaded = load_model(tmp_path / "steer.onnx")
    assert loaded.external_files and level_info(loaded.model) == level_info(model)
    session = inference_session(str(tmp_path / "steer.onnx"), threads=1)
    x = images()
    np.testing.assert_array_equal(run_level(session, x, 1.0),
                                  inference_session(plain, threads=1).run(None, {"input": x})[0])


def test_level_zero_is_the_original(steered):
    original, _, model = steered
    session = inference_session(model, threads=1)
    x = images()
    expected = inference_session(original, threads=1).run(None, {"input": x})[0]
    for level in (0.0, 0.39):
        np.testing.assert_allclose(run_level(session, x, level), expected, rtol=0, atol=1e-5)


def test_each_level_is_the_separately_rewritten_model(steered):
    original, plans, model = steered
    session = inference_session(model, threads=1)
    x = images()
    for (level, plan), above in zip(plans, (0.7, 1.0)):
        alone, _ = rewrite_model(original, plan)
        expected = inference_session(alone, threads=1).run(None, {"input": x})[0]
        for value in (level, above):
            np.testing.assert_array_equal(run_level(session, x, value), expected)
        # the same HasteConv nodes and hyperplanes: the same groups, bit for bit (the kernel's counters agree)
        branch = select_level(model, level)
        assert [n.SerializeToString() for n in branch.graph.node] == [n.SerializeToString() for n in alone.graph.node]
        planes = {i.name: i.SerializeToString() for i in alone.graph.initializer if i.name.endswith(".hyperplanes")}
        assert planes and planes == {i.name: i.SerializeToString() for i in branch.graph.initializer
                                     if i.name in planes}
    # not fed: the default level (0.4)
    np.testing.assert_array_equal(run_level(session, x), run_level(session, x, 0.4))


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.25, float("inf")])
def test_bad_levels_are_clear_errors(steered, bad):
    _, _, model = steered
    session = inference_session(model, threads=1)
    with pytest.raises(Exception, match=r"haste_level must be a number in \[0, 1\], got (nan|1\.5|-0\.25|inf)"):
        run_level(session, images(), bad)
    with pytest.raises(ValueError, match=r"haste_level must be a number in \[0, 1\]"):
        choose_level(bad, [0.0, 0.4, 1.0])
    assert run_level(session, images(), 0.5).shape == (6, 10)  # the session still works


def test_a_level_of_several_values_is_refused(steered):
    session = inference_session(steered[2], threads=1)
    with pytest.raises(Exception, match="one number"):
        session.run(None, {"input": images(), LEVEL_INPUT: np.array([0.5, 1.0], np.float32)})


def test_the_reference_evaluator_runs_the_steerable_model(steered):
    from onnx.reference import ReferenceEvaluator

    from haste_onnx.op.reference import HasteConv, HasteLevel
    from haste_onnx.op.schema import register_schema

    _, _, model = steered
    register_schema()
    reference = ReferenceEvaluator(model, new_ops=[HasteConv, HasteLevel])
    session = inference_session(model, threads=1)
    x = images(2)
    for level in (0.0, 0.4, 1.0):
        got = reference.run(None, {"input": x, LEVEL_INPUT: np.array(level, np.float32)})[0]
        np.testing.assert_allclose(got, run_level(session, x, level), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="got nan"):
        reference.run(None, {"input": x, LEVEL_INPUT: np.array(np.nan, np.float32)})


def test_two_threads_at_different_levels_get_their_own_level(steered):
    _, _, model = steered
    session = inference_session(model, threads=1)
    x = images()
    expected = {level: run_level(session, x, level) for level in (0.0, 1.0)}
    assert not np.array_equal(expected[0.0], expected[1.0])
    failures = []

    def work(level):
        for _ in range(30):
            if not np.array_equal(run_level(session, x, level), expected[level]):
                failures.append(level)

    threads = [threading.Thread(target=work, args=(level,)) for level in (0.0, 1.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_strip_gives_the_original_back(steered):
    original, _, model = steered
    stripped, report = strip_model(model)
    assert stripped.graph.SerializeToString() == original.graph.SerializeToString()
    assert report.count("stripped") == 2
    assert level_info(stripped) is None


def test_levels_with_the_same_plan_share_a_branch_and_a_steerable_model_is_not_rewritten_again(steered):
    original, plans, model = steered
    again, _ = steer_model(original, [(0.3, plans[0][1]), (0.4, plans[0][1]), (1.0, plans[1][1])])
    assert [e["level"] for e in level_info(again)["levels"]] == [0.0, 0.3, 1.0]
    from haste_onnx.errors import ModelRejected

    with pytest.raises(ModelRejected, match="steerable already"):
        steer_model(model, plans)


def test_share_knapsack_reaches_each_share_with_the_least_disturbance():
    rng = np.random.default_rng(4)
    probes = [LayerProbe(f"l{i}", 100.0, {(L, (4, 4)): (float(rng.random()) * (20 - L), float(60 - 2 * L))
                                          for L in (6, 10, 14)}) for i in range(5)]
    full = sum(max(s for _, s in p.choices.values()) for p in probes)
    previous = -1.0
    for share in (0.25, 0.5, 0.75, 1.0):
        choice = choose_share(probes, share, full)
        saved = sum(p.choices[choice[p.node]][1] for p in probes if choice[p.node] is not None)
        disturbance = sum(p.choices[choice[p.node]][0] for p in probes if choice[p.node] is not None)
        assert saved >= share * full - 1e-6 and disturbance >= previous
        previous = disturbance


# ---- 3. the tools ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("steer")
    onnx.save(net_model(12, 12), str(folder / "net.onnx"))
    fake_fashion_mnist(folder / "fmnist", n_test=24)
    return folder


def test_rewrite_steerable_with_the_probe_offers_measured_levels(cli_files, capsys):
    out_file, plan = cli_files / "steer.onnx", cli_files / "plan.json"
    code, out, err = run(["rewrite", cli_files / "net.onnx", out_file, "--steerable", "--objective", "macs",
                          "--levels", "0,0.5,1", "--default-level", "0.5", "--min-channels", 1, "--probe-images", 8,
                          "--candidates", "4,8", "--save-plan", plan, "--force"], capsys)
    assert code == 0, err
    assert "haste_level" in out and "default 0.5" in out
    info = level_info(onnx.load(str(out_file)))
    cuts = [e.get("estimated_cut", 0.0) for e in info["levels"]]
    assert info["levels"][0]["level"] == 0.0 and cuts == sorted(cuts) and cuts[-1] > 0
    assert (cli_files / "plan.level-0.5.json").exists() == any(e["level"] == 0.5 for e in info["levels"])
    code, out, err = run(["info", out_file], capsys)
    assert code == 0 and "steerable" in out and "original Convs" in out


def test_eval_and_bench_sweep_levels_of_one_model(cli_files, capsys):
    model = cli_files / "steerable.onnx"
    onnx.save(steer_model(net_model(12, 12), net_plans(net_model(12, 12)))[0], str(model))
    code, out, err = run(["eval", model, "--levels", "0,0.4,1", "--data-dir", cli_files / "fmnist", "--limit", 16,
                          "--batch", 8, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    rows = doc["levels"]
    assert [r["runs_level"] for r in rows] == [0.0, 0.4, 1.0]
    assert rows[0]["agreement"] == 1.0 and rows[0]["haste_layers"] == 0 and not rows[0]["totals"]["conv_mac_reduction"]
    assert all(r["branch_agreement"] == 1.0 for r in rows)
    cuts = [r["totals"]["conv_mac_reduction"] for r in rows[1:]]
    assert 0 < cuts[0] < cuts[1]
    code, out, err = run(["bench", model, "--levels", "0,1", "--data-dir", cli_files / "fmnist", "--repeats", 3,
                          "--warmup", 1, "--threads", 1, "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["levels"]
    assert [r["level"] for r in rows] == [0.0, 1.0] and rows[1]["conv_mac_cut"] > 0
    assert all(r["steerable"]["median_ms"] > 0 and r["switching"]["median_ms"] > 0 for r in rows)


@pytest.mark.parametrize("argv,message", [
    (["--levels", "0,1.5"], "in [0, 1]"),
    (["--levels", "0.5,0.2"], "rise strictly"),
    (["--default-level", "nan"], "in [0, 1]"),
    (["--levels", "0,0.5,1", "--no-probe"], "need the probe"),
])
def test_bad_steering_options_are_one_line_errors(cli_files, capsys, argv, message):
    code, out, err = run(["rewrite", cli_files / "net.onnx", cli_files / "bad.onnx", "--steerable",
                          "--min-channels", 1, "--force", *argv], capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (cli_files / "bad.onnx").exists()


def test_levels_of_eval_need_a_steerable_model(cli_files, capsys):
    code, out, err = run(["eval", cli_files / "net.onnx", "--levels", "0,1", "--data-dir", cli_files / "fmnist",
                          "--limit", 8], capsys)
    assert code != 0 and "steerable" in err and len(err.strip().splitlines()) == 1


def test_the_example_of_docs_steerable_md_runs(tmp_path):
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "steerable.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1 and '"resnet18_steerable.onnx"' in blocks[0]
    model = tmp_path / "steerable.onnx"
    onnx.save(steer_model(net_model(12, 12), net_plans(net_model(12, 12)))[0], str(model))
    out = subprocess.run([sys.executable, "-c", blocks[0].replace('"resnet18_steerable.onnx"', repr(str(model)))],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:4] == ["0.0 (1, 10)", "0.5 (1, 10)", "1.0 (1, 10)", "refused: True"]


def test_one_l_everywhere_offers_levels_zero_and_one(cli_files, capsys):
    out_file = cli_files / "uniform.onnx"
    code, out, err = run(["rewrite", cli_files / "net.onnx", out_file, "--steerable", "-L", 6, "--min-channels", 1,
                          "--force"], capsys)
    assert code == 0, err
    assert [e["level"] for e in level_info(onnx.load(str(out_file)))["levels"]] == [0.0, 1.0]


def test_a_folded_batchnorm_gets_the_branch_its_own_weights_and_strip_still_gives_the_original():
    from models_inline import bn_model

    original = bn_model()
    plans = [(level, plan_model(original, HashingOptions(hyperplanes=count), Policy(allow_first=True)))
             for level, count in ((0.5, 10), (1.0, 4))]
    model, _ = steer_model(original, plans)
    check_model(model)
    session = inference_session(model, threads=1)
    x = np.random.default_rng(5).normal(size=(1, 16, 8, 8)).astype(np.float32)
    expected = inference_session(original, threads=1).run(None, {"X": x})[0]
    got = session.run(None, {"X": x, LEVEL_INPUT: np.array(0.0, np.float32)})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    for level, plan in plans:
        alone = inference_session(rewrite_model(original, plan)[0], threads=1).run(None, {"X": x})[0]
        np.testing.assert_array_equal(session.run(None, {"X": x, LEVEL_INPUT: np.array(level, np.float32)})[0], alone)
    stripped, _ = strip_model(model)
    assert stripped.graph.SerializeToString() == original.graph.SerializeToString()


def test_bench_and_eval_count_the_same_macs_per_image(cli_files, capsys):
    model = cli_files / "steerable.onnx"
    onnx.save(steer_model(net_model(12, 12), net_plans(net_model(12, 12)))[0], str(model))
    code, out, err = run(["bench", model, "--levels", "1", "--data-dir", cli_files / "fmnist", "--batch", 4,
                          "--repeats", 2, "--warmup", 0, "--threads", 1, "--json"], capsys)
    assert code == 0, err
    bench_macs = json.loads(out)["levels"][0]["conv_macs"]
    code, out, err = run(["eval", model, "--levels", "1", "--data-dir", cli_files / "fmnist", "--limit", 4, "--json"],
                         capsys)
    assert code == 0, err
    assert bench_macs == pytest.approx(json.loads(out)["levels"][0]["totals"]["rewritten_conv_macs_with_overheads"])
