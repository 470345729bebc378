"""`haste-onnx demo` on a tiny fake Fashion-MNIST and a small model: the lines it prints, fetching, errors."""
import json
import re

import pytest

from haste_onnx import cli, zoo
from haste_onnx import data as hd
from haste_onnx.data import fashion_mnist as fm
from conftest import fake_fashion_mnist, net_file

FAST = ["--batch", 8, "--repeats", 2, "--warmup", 1, "--threads", 1]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    monkeypatch.setattr(fm, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("HASTE_ONNX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_demo_prints_accuracy_macs_and_latency(tmp_path, capsys):
    data = fake_fashion_mnist(tmp_path / "fm", n_test=30)
    code, out, err = run(["demo", net_file(tmp_path), "--data-dir", data, "--limit", 20, "-L", 3] + FAST, capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["model", "data", "rewrite", "accuracy", "conv MACs", "latency",
                                                      "int8 alone", "best plan"]
    assert "20 images, fashion-mnist test split" in lines[1]
    assert "2 of 4 conv layers -> HasteConv (plan: L=3, tile 4x4" in lines[2]
    assert re.search(r"original \d+\.\d\d%, rewritten \d+\.\d\d% \([+-]\d+\.\d\d pt; predictions agree", lines[3])
    m = re.search(r"original ([\d.]+) M/image, rewritten ([\d.]+) M/image measured: cut ([\d.]+)%", lines[4])
    assert m and float(m.group(2)) < float(m.group(1)) and float(m.group(3)) > 10
    assert re.search(r"original [\d.]+ ms, rewritten [\d.]+ ms per batch of 8 \(median of 2, 1 threads\): "
                     r"speedup [\d.]+x", lines[5])
    assert re.search(r"^int8 alone: accuracy \d+\.\d\d% \([+-]\d+\.\d\d pt\), latency [\d.]+ ms vs [\d.]+ ms: "
                     r"[\d.]+x \(onnxruntime's quantize_static on every layer, calibrated on 256 synthetic", lines[6])
    assert "`haste-onnx rewrite MODEL OUT --int8`: " in lines[7] and "int8: int8" not in lines[7]


def test_demo_json(tmp_path, capsys):
    data = fake_fashion_mnist(tmp_path / "fm", n_test=12)
    code, out, err = run(["demo", net_file(tmp_path), "--data-dir", data, "--json", "-L", "3"] + FAST, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["command"] == "demo" and doc["images"] == 12
    lat = doc["latency"]
    assert lat["batch"] == 8 and lat["repeats"] == 2 and len(lat["original_samples_ms"]) == 2
    assert lat["original_ms"] > 0 and lat["rewritten_ms"] > 0
    assert doc["rewrite"]["replaced"] == 2 and "conv_mac_reduction" in doc["runs"][0]["totals"]
    for row in (doc["int8"]["int8_alone"], doc["int8"]["best_plan"]):
        assert 0 <= row["accuracy"] <= 1 and row["original_ms"] > 0 and row["variant_ms"] > 0


def test_demo_says_plainly_when_nothing_is_worth_replacing(tmp_path, capsys):
    data = fake_fashion_mnist(tmp_path / "fm", n_test=12)
    # a fidelity target nothing can meet (no change at all): the plan replaces nothing
    code, out, err = run(["demo", net_file(tmp_path), "--data-dir", data, "--max-error", "0",
                          "--probe-images", "4", "--candidates", "4"] + FAST, capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["model", "data", "rewrite", "accuracy", "int8 alone",
                                                      "best plan"]
    assert lines[2].startswith("rewrite:    nothing was worth replacing on this machine: no layer")
    assert "not used: the fidelity target" in lines[5]  # nothing meets an error of 0: the plan is the original
    assert "speed-up 1.00x" in lines[3]
    code, out, _ = run(["demo", net_file(tmp_path), "--data-dir", data, "--max-error", "0", "--json",
                        "--probe-images", "4", "--candidates", "4"] + FAST, capsys)
    doc = json.loads(out)
    assert code == 0 and doc["rewrite"] is None and doc["nothing_to_do"].startswith("no layer")


def test_demo_fetches_missing_data_and_says_so(tmp_path, no_data, monkeypatch, capsys):
    calls = []

    def fake_fetch(cache_dir=None, **kwargs):
        calls.append(cache_dir)
        return fake_fashion_mnist(hd.default_cache_dir() / "fashion-mnist", n_test=10)

    monkeypatch.setattr(fm, "fetch_fashion_mnist", fake_fetch)
    code, out, err = run(["demo", net_file(tmp_path), "--no-int8"] + FAST, capsys)
    assert code == 0, err
    assert len(calls) == 1
    notes = [line for line in out.splitlines() if "fetching" in line]
    assert notes == [f"Fashion-MNIST not found; fetching Debian's dataset-fashion-mnist into "
                     f"{no_data / 'fashion-mnist'} ..."]
    assert "10 images" in out
    # the second time the data are there: no fetch, no note
    code, out, _ = run(["demo", net_file(tmp_path, name="again.onnx"), "--no-int8"] + FAST, capsys)
    assert code == 0 and len(calls) == 1 and "fetching" not in out


def test_demo_without_data_and_no_fetch(tmp_path, no_data, capsys):
    code, _, err = run(["demo", net_file(tmp_path), "--no-fetch"], capsys)
    assert code == 3 and "haste-onnx fetch-data fashion-mnist" in err


def test_demo_fetch_failure(tmp_path, no_data, monkeypatch, capsys):
    def fail(*a, **k):
        raise RuntimeError("could not download Debian package dataset-fashion-mnist:\n  offline")

    monkeypatch.setattr(fm, "fetch_fashion_mnist", fail)
    code, out, err = run(["demo", net_file(tmp_path)], capsys)
    assert code == 3 and "could not fetch Fashion-MNIST" in err and "fetching" in out


def test_demo_default_model_is_resnet20(tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    models.mkdir()
    net_file(models, name="resnet20_fmnist.onnx")
    monkeypatch.setattr(zoo, "search_dirs", lambda: [models])
    data = fake_fashion_mnist(tmp_path / "fm", n_test=9)
    code, out, err = run(["demo", "--data-dir", data, "--no-int8"] + FAST, capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"model:      resnet20 ({models / 'resnet20_fmnist.onnx'})"


def test_demo_bundled_model_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zoo, "search_dirs", lambda: [tmp_path])
    code, _, err = run(["demo"], capsys)
    assert code == 3 and "bundled model resnet20" in err and len(err.strip().splitlines()) == 1
