"""`evaluate()` and `haste-onnx eval`: accuracy, measured counters vs the reference, totals, JSON, errors."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from haste_onnx import cli
from haste_onnx import data as hd
from haste_onnx.data.fashion_mnist import DEBIAN_FASHION_MNIST_DIR  # noqa: F401
from haste_onnx.data import fashion_mnist as fm
from haste_onnx.data.preprocess import prepare_images
from haste_onnx.measure.conv_work import conv_layers
from haste_onnx.measure.evaluate import EvalOptions, evaluate
from haste_onnx.measure.instrument import add_stats_outputs
from haste_onnx.measure.statistics import paired_bootstrap, wilson_interval
from haste_onnx.op.stats import STATS_FIELDS
from haste_onnx.plan import Policy
from haste_onnx.rewrite import HashingOptions, rewrite_model
from conftest import fake_fashion_mnist, net_file, net_model  # noqa: F401
from models_inline import build, conv_w, run_ort, run_reference


# Stem (kept dense), two 3x3 convs with 16 input channels (replaced by default), a 1x1 conv (kept),
# global pooling and a linear classifier. Tanh keeps channels distinct (no all-zero ReLU channels).
def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """No Debian data set and an empty cache, whatever this machine has."""
    monkeypatch.setattr(fm, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("HASTE_ONNX_CACHE", str(tmp_path / "empty-cache"))


@pytest.fixture
def dataset(tmp_path):
    return fake_fashion_mnist(tmp_path / "fmnist", n_test=40)


def images_and_labels(n=24, seed=3):
    """Prepared 12x12 images and the original model's own predictions as labels (accuracy 100%)."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    model = net_model()
    x = prepare_images(raw, model)
    labels = run_ort(model, {"input": x})[0].argmax(axis=1)
    return model, x, labels


# ---- statistics --------------------------------------------------------------------------------------

def test_wilson_interval_known_values():
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-4) and hi == pytest.approx(0.9448, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_paired_bootstrap():
    a = np.array([1] * 50 + [0] * 50, bool)
    assert paired_bootstrap(a, a) == (0.0, 0.0)
    b = a.copy()
    b[:10] = False  # b is worse on 10 of 100 images, never better
    lo, hi = paired_bootstrap(a, b, resamples=4000)
    assert -0.17 < lo < -0.1 < hi <= -0.03


# ---- the core function -------------------------------------------------------------------------------

def test_many_hyperplanes_change_nothing():
    model, x, labels = images_and_labels()
    opts = EvalOptions(hashing=HashingOptions(hyperplanes=64, sparsity=0.0), batch=7, threads=1)
    res = evaluate(model, x, labels, opts)
    run0 = res["runs"][0]
    assert res["original"]["accuracy"] == 1.0
    assert run0["accuracy"] == res["original"]["accuracy"] and run0["agreement"] == 1.0
    assert run0["difference"]["accuracy"] == 0.0
    assert [r["node"] for r in run0["layers"]] == ["c1", "c2"]
    t = run0["totals"]
    # near 0: only channels that are (almost) positive multiples of each other in a patch still share a
    # code (sign hashing is scale-invariant), and this random net has a few of those
    assert 0 <= t["replaced_mac_reduction"] < 0.06 and 0 <= t["conv_mac_reduction"] < 0.06
    assert t["channel_ratio"] > 0.94
    assert t["conv_mac_reduction_with_overheads"] < 0  # nothing saved, hashing still costs


def test_few_hyperplanes_cut_much_and_totals_add_up():
    model, x, labels = images_and_labels()
    res = evaluate(model, x, labels, EvalOptions(hashing=HashingOptions(hyperplanes=2), batch=10, threads=1))
    run0, n = res["runs"][0], len(x)
    layers, t = run0["layers"], run0["totals"]
    # at most 2^2 groups of 16 channels in every tile
    assert all(r["channel_ratio"] <= 4 / 16 for r in layers)
    assert t["replaced_mac_reduction"] >= 0.75
    dense = sum(r["counters"]["dense_macs"] for r in layers) / n
    haste = sum(r["counters"]["haste_macs"] for r in layers) / n
    over = sum(r["counters"][k] for r in layers for k in ("centering_ops", "hashing_ops", "merge_ops")) / n
    assert t["replaced_dense_macs"] == pytest.approx(dense) and t["replaced_haste_macs"] == pytest.approx(haste)
    assert t["replaced_mac_reduction"] == pytest.approx(1 - haste / dense)
    assert t["replaced_mac_reduction_with_overheads"] == pytest.approx(1 - (haste + over) / dense)
    # measured dense MACs equal the MACs from shapes; the original total covers every Conv
    static = {r["node"]: r["macs"] for r in conv_layers(model)}
    for r in layers:
        assert r["dense_macs"] == static[r["node"]] == r["static_macs"]
    assert res["original"]["conv_macs"] == sum(static.values())
    assert res["original"]["conv_layers"] == 4
    assert t["conv_mac_reduction"] == pytest.approx((dense - haste) / sum(static.values()))
    assert t["rewritten_conv_macs"] == pytest.approx(sum(static.values()) - dense + haste)


def test_counters_equal_the_reference():
    model, x, labels = images_and_labels(n=3)
    x = x[:3]
    rewritten, _ = rewrite_model(model, HashingOptions(hyperplanes=4, seed=5))
    measured, pairs = add_stats_outputs(rewritten)
    assert [p[0] for p in pairs] == ["c1", "c2"]
    got = run_ort(measured, {"input": x}, with_library=True)
    ref = run_reference(measured, {"input": x})
    for k in range(1, 3):
        assert got[k].dtype == np.int64 and got[k].shape == (len(STATS_FIELDS),)
        np.testing.assert_array_equal(got[k], ref[k])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-4)
    # evaluate() sums the same counters over its batches
    res = evaluate(model, x, labels[:3], EvalOptions(hashing=HashingOptions(hyperplanes=4, seed=5), batch=2,
                                                     threads=1))
    for k, row in enumerate(res["runs"][0]["layers"]):
        assert [row["counters"][f] for f in STATS_FIELDS] == ref[k + 1].tolist()


def test_add_stats_outputs_leaves_the_input_alone():
    rewritten, _ = rewrite_model(net_model())
    before = rewritten.SerializeToString()
    measured, pairs = add_stats_outputs(rewritten)
    assert rewritten.SerializeToString() == before
    outs = {o.name: o for o in measured.graph.output}
    for _, name in pairs:
        assert outs[name].type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_value for d in outs[name].type.tensor_type.shape.dim] == [7]
    again, pairs2 = add_stats_outputs(measured)  # idempotent
    assert pairs2 == pairs and len(again.graph.output) == len(measured.graph.output)


def test_seeds_give_spread():
    model, x, labels = images_and_labels()
    res = evaluate(model, x, labels, EvalOptions(hashing=HashingOptions(hyperplanes=6), seeds=[0, 1, 2], threads=1))
    assert [r["seed"] for r in res["runs"]] == [0, 1, 2]
    cuts = [r["totals"]["conv_mac_reduction"] for r in res["runs"]]
    s = res["summary"]["conv_mac_reduction"]
    assert s["n"] == 3 and s["mean"] == pytest.approx(np.mean(cuts)) and s["std"] == pytest.approx(np.std(cuts, ddof=1))
    assert len(set(cuts)) > 1  # different hyperplanes, different merges


def test_a_rewritten_model_is_evaluated_as_it_is():
    model, x, labels = images_and_labels()
    rewritten, _ = rewrite_model(model, HashingOptions(hyperplanes=3))
    res = evaluate(rewritten, x, labels, EvalOptions(threads=1))
    direct = evaluate(model, x, labels, EvalOptions(hashing=HashingOptions(hyperplanes=3), threads=1))
    assert res["runs"][0]["seed"] is None
    assert res["original"]["accuracy"] == direct["original"]["accuracy"] == 1.0
    assert res["runs"][0]["totals"] == direct["runs"][0]["totals"]


def test_selection_policy_is_used():
    model, x, labels = images_and_labels()
    res = evaluate(model, x, labels, EvalOptions(policy=Policy(exclude=["c2"]), threads=1))
    assert [r["node"] for r in res["runs"][0]["layers"]] == ["c1"]


def test_prepare_images_pads_resizes_and_normalises():
    raw = np.full((2, 28, 28), 255, np.uint8)
    x = prepare_images(raw, net_model(32, 32), mean=0.5, std=0.25)
    assert x.shape == (2, 1, 32, 32) and x.dtype == np.float32
    assert x[0, 0, 0, 0] == pytest.approx(-2.0) and x[0, 0, 16, 16] == pytest.approx(2.0)
    assert prepare_images(raw, net_model(12, 12)).shape == (2, 1, 12, 12)


# ---- the command ---------------------------------------------------------------------------------------

def test_eval_command_table(tmp_path, dataset, capsys):
    model = net_file(tmp_path)
    code, out, err = run(["eval", model, "--data-dir", dataset, "--limit", 30, "--batch", 8, "-L", 4,
                          "--threads", 1], capsys)
    assert code == 0, err
    assert "30 images, fashion-mnist test split" in out
    assert "per replaced layer, per image" in out and "c1 " in out and "c2 " in out
    assert "original" in out and "rewritten seed 0" in out
    assert "all conv MACs (4 layers" in out and "replaced convs (2 layers" in out
    assert "Wilson" in out and "paired bootstrap" in out


def test_eval_command_json(tmp_path, dataset, capsys):
    model = net_file(tmp_path)
    code, out, err = run(["eval", model, "--data-dir", dataset, "--limit", 20, "-L", 5, "--seeds", 3, 4,
                          "--tile", 2, "--json", "--threads", 1], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["command"] == "eval" and doc["images"] == 20
    assert set(doc["versions"]) == {"haste_onnx", "onnxruntime", "onnx", "numpy"}
    s = doc["settings"]
    assert s["hashing"]["hyperplanes"] == 5 and s["hashing"]["tile"] == [2, 2] and s["seeds"] == [3, 4]
    assert s["threads"] == 1 and s["batch"] == 100 and "policy" in s and "bootstrap_seed" in s
    assert doc["data"]["mean"] == [0.286] and doc["data"]["input_size"] == [1, 12, 12]
    assert {"accuracy", "ci95", "conv_macs"} <= set(doc["original"])
    assert [r["seed"] for r in doc["runs"]] == [3, 4]
    for r in doc["runs"]:
        assert {"accuracy", "ci95", "difference", "agreement", "layers", "totals"} <= set(r)
        assert {"conv_mac_reduction", "conv_mac_reduction_with_overheads", "replaced_mac_reduction",
                "replaced_mac_reduction_with_overheads", "channel_ratio"} <= set(r["totals"])
    assert doc["summary"]["accuracy"]["n"] == 2


def test_eval_missing_dataset_says_how_to_get_it(tmp_path, no_debian, capsys):
    code, out, err = run(["eval", "--no-probe", net_file(tmp_path)], capsys)
    assert code == 3
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in err
    assert "Fashion-MNIST" in line and "haste-onnx fetch-data fashion-mnist" in line and "--data-dir" in line
    code, _, err = run(["eval", "--no-probe", net_file(tmp_path, name="n2.onnx"), "--data-dir", tmp_path / "nowhere"], capsys)
    assert code == 3 and str(tmp_path / "nowhere") in err


def test_eval_unknown_model_name(capsys):
    code, _, err = run(["eval", "--no-probe", "resnet99"], capsys)
    assert code == 3 and "not a model name" in err and "resnet20" in err


def test_eval_missing_model_file(tmp_path, capsys):
    code, _, err = run(["eval", "--no-probe", tmp_path / "nope.onnx"], capsys)
    assert code == 3 and "no such file" in err


def test_eval_mnist_needs_data_dir(tmp_path, capsys):
    code, _, err = run(["eval", "--no-probe", net_file(tmp_path), "--data", "mnist"], capsys)
    assert code == 3 and "--data-dir" in err


def test_eval_mnist_and_image_folder(tmp_path, dataset, capsys):
    model = net_file(tmp_path)
    code, out, err = run(["eval", "--no-probe", model, "--data", "mnist", "--data-dir", dataset, "--limit", 5, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["images"] == 5
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "folder" / c).mkdir(parents=True)
        for i in range(3):
            np.save(tmp_path / "folder" / c / f"{i}.npy", rng.integers(0, 256, (20, 20), dtype=np.uint8))
    code, out, err = run(["eval", "--no-probe", model, "--data", "folder", "--data-dir", tmp_path / "folder", "--json",
                          "--mean", 0.5, "--std", 0.5], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["images"] == 6 and doc["data"]["mean"] == [0.5]


def test_eval_nothing_eligible_is_rejected(tmp_path, dataset, capsys):
    code, _, err = run(["eval", "--no-probe", net_file(tmp_path), "--data-dir", dataset, "--min-channels", 64], capsys)
    assert code == 5 and "nothing to do" in err


def test_fetch_data_with_files_present(tmp_path, no_debian, capsys):
    fake_fashion_mnist(tmp_path / "cache" / "fashion-mnist")
    code, out, err = run(["fetch-data", "fashion-mnist", "--cache-dir", tmp_path / "cache"], capsys)
    assert code == 0, err
    assert "already in" in out and str(tmp_path / "cache" / "fashion-mnist") in out


def test_fetch_data_failure_is_an_input_error(tmp_path, no_debian, monkeypatch, capsys):
    def fail(*a, **k):
        raise RuntimeError("could not download Debian package dataset-fashion-mnist:\n  no network")

    monkeypatch.setattr(fm, "fetch_fashion_mnist", fail)
    code, _, err = run(["fetch-data", "fashion-mnist", "--cache-dir", tmp_path / "c"], capsys)
    assert code == 3 and "no network" in err and len(err.strip().splitlines()) == 1
