"""benchmarks/suite.py, suite_prep.py and suite.json (the real-model suite), and what `bench` learned for it
(`--against`, `--input`), on tiny inline models: no network, no real models, no timing limits."""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import load_benchmark

from conftest import detect_model, net_model, nhwc_model

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load(name):
    return load_benchmark(name)


@pytest.fixture(scope="module")
def suite():
    return _load("suite")


@pytest.fixture(scope="module")
def prep():
    return _load("suite_prep")


@pytest.fixture(scope="module")
def parser():
    from haste_onnx.cli import build_parser

    return build_parser()


FILES = {"model": "m.onnx", "out": "o.onnx", "calibration": "cal", "batch": "b.npy", "variant": "v.onnx"}


# ---- the rows and their commands -------------------------------------------------------------------------

def test_suite_rows_are_complete_and_unique(suite):
    s = suite.load_suite()
    ids = [r["id"] for r in s["rows"]]
    assert len(ids) == len(set(ids))
    for row in s["rows"]:
        assert {"id", "title", "model", "input", "images", "calibration"} <= set(row), row["id"]
        assert row["images"] in ("fashion-mnist", "photos", "ocr")
        assert len(row["model"].keys() & {"shared", "package", "zoo"}) == 1


def test_every_command_parses_with_the_cli(suite, parser):
    s = suite.load_suite()
    for row in s["rows"]:
        for calibrated in (False, True):
            args = parser.parse_args(suite.resolve(suite.rewrite_argv(row, calibrated), FILES))
            assert args.json and args.force and (args.calibration == "cal") == calibrated
        args = parser.parse_args(suite.resolve(suite.plan_argv(row, "plan"), FILES))
        assert args.int8 and args.method == "haste"
        static = suite.plan_argv(row, "plan_static")
        assert (static is None) == ("static_args" not in row)
        if static:
            args = parser.parse_args(suite.resolve(static, FILES))
            assert args.int8 and args.method != "haste"
        for cfg in s["settings"]["configs"]:
            for b in row.get("batches", s["settings"]["batches"]):
                argv = suite.resolve(suite.bench_argv(b, cfg["threads"], cfg["clock"], s["settings"]), FILES)
                args = parser.parse_args(argv)
                assert (args.batch, args.threads, args.cpu_time) == (b, cfg["threads"], cfg["clock"] == "cpu")
                assert args.against == "v.onnx" and args.inputs == ["b.npy"]


def test_resolve_replaces_placeholders_only(suite):
    assert suite.resolve(["x{model}y", "--k", "{out}"], {"model": "A", "out": "B"}) == ["xAy", "--k", "B"]


def test_error_line_picks_the_cli_error(suite):
    err = "progress\nhaste-onnx rewrite: error: nothing to do: no layer is faster here\n(see --help)\n"
    assert suite.error_line(err) == "haste-onnx rewrite: error: nothing to do: no layer is faster here"
    assert suite.error_line("") == "(no output)"


# ---- rows that cannot be prepared ------------------------------------------------------------------------

def test_missing_models_folder_is_an_error_row(suite, tmp_path, monkeypatch):
    monkeypatch.delenv("HASTE_ONNX_MODELS", raising=False)
    row = next(r for r in suite.load_suite()["rows"] if "shared" in r["model"])
    doc = suite.measure_row(row, suite.load_suite()["settings"], sys.executable, None, tmp_path)
    assert doc["error"]["stage"] == "prepare" and "--models-dir" in doc["error"]["reason"]
    doc = suite.measure_row(row, suite.load_suite()["settings"], sys.executable, str(tmp_path / "no"), tmp_path)
    assert "does not exist" in doc["error"]["reason"]


def test_missing_package_is_an_error_row(suite, tmp_path):
    row = {"id": "x", "title": "x", "model": {"package": "no_such_package_here", "file": "m.onnx"},
           "input": {"size": [8, 8]}, "images": "photos", "calibration": "photo-crops"}
    doc = suite.measure_row(row, suite.load_suite()["settings"], sys.executable, None, tmp_path)
    assert doc["error"] == {"stage": "prepare", "reason": "the package no_such_package_here is not installed "
                                                          "(pip install --no-deps no-such-package-here)"}


def test_fix_hw_fixes_height_and_width_not_the_batch(prep):
    m = prep.fix_hw(nhwc_model(h="H", w="W"), 20, 24, "NHWC")
    dims = [d.dim_value or d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 20, 24, 3]


# ---- rendering ---------------------------------------------------------------------------------------------

def _bench(b, t, speed, r=None):
    return {"batch": b, "threads": t, "clock": "cpu" if t == 1 else "wall", "argv": ["bench", "{model}"],
            "speedup": speed, "pair": {"p25": speed - 0.1, "p75": speed + 0.1, "median": speed},
            "reduction": r, "ideal": 1 / (1 - r) if r else None,
            "measured_over_ideal": speed * (1 - r) if r else None}


def _docs():
    settings = {"warmup": 1, "repeats": 3, "batches": [1, 8]}
    fid = {"images": 37, "top1_agreement": 1.0, "relative_error_mean": 0.01, "relative_error_max": 0.02}
    ok = {"id": "a", "title": "A", "row": {"model": {"shared": "a.onnx"}}, "images": {"about": "photos",
                                                                                     "calibration": "crops"},
          "model": {"source": "/m/a.onnx", "sha256": "0" * 64},
          "haste": {"argv": ["rewrite", "{model}", "{out}", "--json"], "summary": {"replaced": 3, "layers": 5},
                    "bench": [_bench(1, 1, 1.25, 0.5), _bench(8, 1, 1.5, 0.5), _bench(1, 2, 1.1), _bench(8, 2, 1.2)],
                    "fidelity": fid},
          "int8": {"quantization": {"calibration_images": 256}, "bench": [_bench(1, 1, 3.0), _bench(8, 1, 3.5)],
                   "fidelity": {**fid, "top1_agreement": 0.97}}}
    skipped = {"batch": 1, "threads": 1, "argv": ["bench"], "skipped": "nothing to do: 1.00x"}
    none = {"id": "b", "title": "B", "row": {"model": {"package": "p", "file": "f"}, "batches": [1]},
            "haste": {"argv": ["rewrite"], "bench": [skipped],
                      "nothing_to_do": "haste-onnx rewrite: error: nothing to do: no layer is faster"}}
    bad = {"id": "c", "title": "C", "row": {"model": {"zoo": "z"}}, "error": {"stage": "prepare",
                                                                              "reason": "z is not built"}}
    return [ok, none, bad], settings


def test_render_shows_speed_int8_fidelity_commands_and_reasons(suite):
    docs, settings = _docs()
    text = suite.render(docs, settings)
    assert ("| a | 1 | 1.25x (1.15x-1.35x) | 1.10x (1.00x-1.20x) | - | 3.00x (2.90x-3.10x) | - | 50.0% / - | "
            "2.00x / - | 62% / - |") in text
    assert "| b | 1 | 1.00x (none) |" in text
    assert "nothing to do (exit 5): haste-onnx rewrite: error: nothing to do: no layer is faster" in text
    assert "| c | - | not measured: prepare: z is not built |" in text
    assert "`haste-onnx rewrite {model} {out} --json`" in text
    assert "top-1 agreement 97.0%" in text and "top-1 agreement 100.0%" in text
    assert suite.render(docs, settings) == text  # deterministic


def test_merge_row_keeps_the_stored_variants(suite, tmp_path):
    docs, _ = _docs()
    suite.write_row(tmp_path, docs[0])
    new = {"id": "a", "plan": {"argv": ["rewrite", "--int8"]}, "stages": {"rewrite plan": 3.0},
           "provenance": {"git_commit": "abc"}}
    merged = suite.merge_row(tmp_path, new, ["plan"])
    assert merged["haste"] == docs[0]["haste"] and merged["plan"]["argv"] == ["rewrite", "--int8"]
    assert merged["plan"]["provenance"]["git_commit"] == "abc" and merged["stages"]["rewrite plan"] == 3.0


def test_the_headline_puts_int8_alone_beside_the_plans(suite):
    docs, settings = _docs()
    docs[0]["plan"] = {"argv": ["rewrite", "{model}", "{out}", "--int8"],
                       "int8": {"used": True, "quantized": 20, "layers": 21, "kept_float": {"x": "slower"},
                                "calibration": "256 synthetic probe images (data-free): ..."},
                       "bench": [{"batch": 1, "threads": 1, "speedup": 3.5, "pair": {"p25": 3.4, "p75": 3.6},
                                  "argv": ["bench"]}]}
    text = suite.render(docs, settings)
    assert "## float32, int8 alone, best plan" in text
    assert "| a | 1 | 3.00x (2.90x-3.10x) | 3.50x (3.40x-3.60x) | - |" in text
    assert "int8 on 20 of 21 weighted layers (1 kept float: slower), calibrated on 256 synthetic probe images" in text


def test_write_row_and_render_only(suite, tmp_path):
    docs, settings = _docs()
    for d in docs:
        suite.write_row(tmp_path, d)
    s = {"rows": [{"id": "c"}, {"id": "a"}, {"id": "b"}]}
    assert [d["id"] for d in suite.stored(tmp_path, s)] == ["c", "a", "b"]


# ---- fidelity --------------------------------------------------------------------------------------------

def test_classifier_fidelity(suite):
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]], np.float32)
    out = np.array([[1.0, 0.0], [1.0, 0.0], [2.0, 1.0]], np.float32)
    f = suite.classifier_fidelity(ref, out, np.array([0, 1, 0]))
    assert f["top1_agreement"] == pytest.approx(2 / 3)
    assert f["relative_error_max"] == pytest.approx(np.sqrt(2))
    assert (f["accuracy_original"], f["accuracy"]) == (1.0, pytest.approx(2 / 3))


def test_ctc_decode_and_ocr_fidelity(suite, prep):
    chars = ["blank", "a", "b", " "]

    def probs(seq):
        p = np.full((len(seq), 4), 0.01, np.float32)
        p[np.arange(len(seq)), seq] = 1.0
        return p

    good, bad = probs([1, 1, 0, 1, 2, 3, 2]), probs([1, 0, 0, 2, 2, 0, 0])
    assert prep.ctc_decode(good[None], chars) == ["aab b"]
    f = suite.ocr_fidelity(np.stack([good, good]), np.stack([good, bad]), ["aab b", "x"], chars)
    assert (f["exact_original"], f["exact"], f["same_text"]) == (0.5, 0.5, 0.5)


def test_ctc_characters_from_metadata(prep):
    m = net_model()
    onnx.helper.set_model_props(m, {"character": "x\ny"})
    assert prep.ctc_characters(m) == ["blank", "x", "y", " "]


def test_detection_fidelity_keeps_identical_boxes(suite):
    rng = np.random.default_rng(0)
    out = np.zeros((2, 7, 64), np.float32)
    out[:, :2] = rng.uniform(10, 100, (2, 2, 64))
    out[:, 2:4] = rng.uniform(5, 20, (2, 2, 64))
    out[:, 4:] = rng.uniform(0, 0.6, (2, 3, 64))
    f = suite.detection_fidelity(out, out.copy())
    assert f["detections_kept"] == 1.0 and f["images_unchanged"] == 1.0 and f["detections_original"] > 0


# ---- inputs ------------------------------------------------------------------------------------------------

def test_preprocess_nhwc_range_and_normalisation(prep):
    p = prep.Preprocess(layout="NHWC", size=(2, 3), channels=3, value_range=(0, 255), mean=(127.5,), std=(127.5,))
    x = p.prepare(np.ones((1, 2, 3, 3), np.float32))
    assert x.shape == (1, 2, 3, 3) and np.allclose(x, 1.0)
    assert prep.Preprocess(size=(2, 3)).prepare(np.zeros((1, 2, 3, 3))).shape == (1, 3, 2, 3)


def test_ocr_label_rendering_of_one_line(prep):
    pytest.importorskip("PIL")
    try:
        fonts = prep.font_paths()
    except prep.PrepareError:
        pytest.skip("no DejaVu fonts here (apt-get install fonts-dejavu-core)")
    img = prep.render_line("Total 12.50", fonts[0])
    a = np.asarray(img.convert("L"))
    assert a.shape[1] > 3 * a.shape[0] and a.min() < 64 and a.max() == 255  # a wide line, black on white
    p = prep.Preprocess(size=(48, 320), mean=(0.5,), std=(0.5,), pad_right=True)
    x = p.prepare_pil([img])
    width = int(np.ceil(48 * img.width / img.height))
    assert x.shape == (1, 3, 48, 320) and np.all(x[0, :, :, width:] == 0) and x.min() >= -1 and x.max() <= 1
    texts = prep.ocr_texts(5, seed=3)
    assert texts == prep.ocr_texts(5, seed=3) and len(set(texts)) > 1


def test_random_crops_are_seeded_squares(prep):
    from PIL import Image

    photos = [("a", Image.new("RGB", (40, 30))), ("b", Image.new("RGB", (20, 50)))]
    crops = prep.random_crops(photos, 5, seed=1)
    assert len(crops) == 5 and all(c.size[0] == c.size[1] for _, c in crops)
    assert [c.size for _, c in crops] == [c.size for _, c in prep.random_crops(photos, 5, seed=1)]


# ---- int8 -------------------------------------------------------------------------------------------------------

def test_int8_quantization_of_a_tiny_model(prep, tmp_path):
    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    pre = prep.Preprocess(size=(12, 12), channels=1, mean=(0.286,), std=(0.353,))
    cal = prep.synthetic_inputs(pre, 16)
    assert cal.shape == (16, 1, 12, 12)
    info = prep.quantize_int8(src, tmp_path / "int8.onnx", cal)
    assert info["quant_format"] == "QDQ" and info["per_channel"] and info["calibration_images"] == 16
    q = onnx.load(str(tmp_path / "int8.onnx"))
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    import onnxruntime as ort

    ref = ort.InferenceSession(str(src)).run(None, {"input": cal[:4]})[0]
    out = ort.InferenceSession(str(tmp_path / "int8.onnx")).run(None, {"input": cal[:4]})[0]
    assert out.shape == ref.shape and np.linalg.norm(out - ref) < 0.5 * np.linalg.norm(ref) + 1e-3


# ---- what bench learned -------------------------------------------------------------------------------------

def _bench_opts(**kw):
    from haste_onnx.measure.bench import BenchOptions

    return BenchOptions(warmup=0, repeats=2, profile_runs=0, memory=False, threads=1, **kw)


def test_bench_against_a_model_without_haste_has_no_mac_figures(prep, tmp_path):
    from haste_onnx.measure.bench import bench

    src = tmp_path / "net.onnx"
    onnx.save(net_model(), str(src))
    pre = prep.Preprocess(size=(12, 12), channels=1)
    prep.quantize_int8(src, tmp_path / "q.onnx", prep.synthetic_inputs(pre, 8))
    x = prep.synthetic_inputs(pre, 3)
    doc = bench(net_model(), None, _bench_opts(batch=4), feed={"input": x}, against=onnx.load(str(tmp_path / "q.onnx")))
    assert doc["speedup"] > 0 and doc["ideal"]["reduction"] is None and doc["batch"]["repeated"]
    assert doc["batch"]["inputs"] == {"input": [4, 1, 12, 12]} and doc["settings"]["against"]


def test_bench_nhwc_free_dims_counts_macs_at_the_batch_size(tmp_path):
    from haste_onnx.measure.bench import bench, fix_input_dims
    from haste_onnx.plan import HashingOptions, Policy, plan_model
    from haste_onnx.rewrite import rewrite_model

    model = nhwc_model(h="H", w="W")
    x = np.random.default_rng(0).random((2, 20, 24, 3), np.float32)
    fixed = fix_input_dims(model, {"input": x})
    assert [d.dim_value or d.dim_param for d in fixed.graph.input[0].type.tensor_type.shape.dim] == ["N", 20, 24, 3]
    assert fix_input_dims(fixed, {"input": x}) is fixed
    rewritten, _ = rewrite_model(model, plan_model(model, HashingOptions(hyperplanes=6), Policy()))
    doc = bench(model, None, _bench_opts(batch=2), feed={"input": x}, against=rewritten)
    r = doc["flops"]
    assert 0 < r["conv_mac_reduction"] < 1 and doc["ideal"]["speedup"] > 1  # not the 15077% of free dims
    # the static MACs are those of a 20x24 input: the first two convs of the net at that size
    assert r["original_conv_macs"] == 20 * 24 * 9 * (16 * 3 + 16 * 16 + 24 * 16)


def test_bench_cli_with_inputs_and_against(tmp_path, capsys):
    from haste_onnx.cli import main
    from haste_onnx.plan import HashingOptions, Policy, plan_model
    from haste_onnx.rewrite import rewrite_model

    model = nhwc_model(h="H", w="W")
    onnx.save(model, str(tmp_path / "m.onnx"))
    rewritten, _ = rewrite_model(model, plan_model(model, HashingOptions(hyperplanes=6), Policy()))
    onnx.save(rewritten, str(tmp_path / "r.onnx"))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 16, 20, 3), np.float32))
    argv = ["bench", str(tmp_path / "m.onnx"), "--against", str(tmp_path / "r.onnx"), "--input",
            f"input={tmp_path / 'x.npy'}", "--batch", "2", "--threads", "1", "--repeats", "2", "--warmup", "0",
            "--profile-runs", "0", "--no-memory", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["against"] == str(tmp_path / "r.onnx") and doc["batch"]["shape"] == [2, 16, 20, 3]
    assert doc["data"]["source"] == "arrays" and doc["flops"]["conv_mac_reduction"] is not None
    assert main(argv[:-1]) == 0 and "as given in" in capsys.readouterr().out
    bad = argv[:5] + [f"nope={tmp_path / 'x.npy'}"] + argv[6:]
    assert main(bad) == 3 and "has no input 'nope'" in capsys.readouterr().err
    assert main(argv + ["-L", "8"]) == 2


def test_bench_input_needs_a_name_for_several_inputs(tmp_path):
    from haste_onnx.commands.bench import read_inputs
    from haste_onnx.errors import InputError

    m = detect_model()
    extra = onnx.helper.make_tensor_value_info("other", onnx.TensorProto.FLOAT, [1])
    m.graph.input.append(extra)
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(InputError, match="say which with NAME=FILE.npy"):
        read_inputs([str(tmp_path / "x.npy")], m)
    with pytest.raises(InputError, match="no array for the model's input"):
        read_inputs([f"images={tmp_path / 'x.npy'}"], m)
