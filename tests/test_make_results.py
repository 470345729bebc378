"""benchmarks/grid.json, measure.py, render.py and bench_models.py: results as data (no evaluation runs here).

Properties of the real grid and stored results (every argv parses with the real CLI parser, ids are
unique, every stored result belongs to a grid point and ran its argv, the docs are what the stored results
render to), and a tiny synthetic grid with known numbers through the same load -> summarise -> render path.
"""
import json
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load(name):
    return load_benchmark(name)


@pytest.fixture(scope="module")
def measure():
    return _load("measure")


@pytest.fixture(scope="module")
def render():
    return _load("render")


@pytest.fixture(scope="module")
def bench_models():
    return _load("bench_models")


@pytest.fixture(scope="module")
def grid():
    return json.loads((BENCH / "grid.json").read_text())


@pytest.fixture(scope="module")
def parser():
    from haste_onnx.cli import build_parser

    return build_parser()


def _seeds(args):
    return args.seeds if args.seeds else [args.seed]


# ---- the real grid and stored results ------------------------------------------------------------


def test_every_grid_argv_parses_with_the_cli(grid, parser):
    for p in grid["points"]:
        args = parser.parse_args(p["argv"])
        assert args.command == "eval" and args.json, p["id"]
        assert args.threads == 1, p["id"]  # accuracy and counters do not depend on it; a shared machine
        model = grid["models"][p["model"]]["arg"]
        assert args.model == model, p["id"]
        if "latency_argv" in p:
            lat = parser.parse_args(p["latency_argv"])
            assert lat.command == "bench" and lat.json and lat.cpu_time and lat.model == model, p["id"]
            assert lat.seed == _seeds(args)[0], p["id"]  # the latency of the first seed's rewrite
            # the same rewrite as the eval: every option but seeds, threads and the bench's own
            same = ("hyperplanes", "tile", "sparsity", "merge", "magnitude_split", "allow_strided", "allow_1x1",
                    "target_cut", "probe", "probe_budget", "budget_draws", "probe_images", "candidates",
                    "candidate_tiles")
            assert {k: getattr(lat, k) for k in same} == {k: getattr(args, k) for k in same}, p["id"]


def test_grid_ids_are_unique_and_name_their_model(grid):
    ids = [p["id"] for p in grid["points"]]
    assert len(ids) == len(set(ids))
    for p in grid["points"]:
        assert p["model"] in grid["models"]
        assert re.fullmatch(r"[a-z0-9_]+/[A-Za-z0-9_.]+", p["id"]) and p["id"].split("/")[0] == p["model"]
        assert p["group"] in ("main", "split", "defaults", "ablation", "mnv2")
        assert p["argv"][-1] == "--json"


def test_only_the_shared_model_reads_the_models_folder(grid, measure):
    for p in grid["points"]:
        shared = bool(grid["models"][p["model"]].get("shared"))
        assert measure.needs_models_dir(p) == shared, p["id"]
        assert not any("../shared" in a for a in p["argv"] + p.get("latency_argv", [])), p["id"]


def test_every_stored_result_belongs_to_a_grid_point(grid, render):
    by_id = {p["id"]: p for p in grid["points"]}
    files = sorted((BENCH / "results").glob("*/*.json"))
    assert files
    assert render.stray_results(BENCH / "results", grid) == []
    for f in files:
        doc = json.loads(f.read_text())
        point_id = f"{f.parent.name}/{f.stem}"
        assert doc["id"] == point_id and point_id in by_id
        assert doc["argv"] == by_id[point_id]["argv"]  # it ran the grid's command


def test_stored_runs_are_the_seeds_of_their_argv(grid, parser):
    for p in grid["points"]:
        f = BENCH / "results" / f"{p['id']}.json"
        if not f.exists():
            continue
        doc = json.loads(f.read_text())
        res = doc["result"]
        assert [r["seed"] for r in res["runs"]] == _seeds(parser.parse_args(p["argv"])), p["id"]
        assert sorted(s for src in doc["sources"] for s in src["seeds"]) == [r["seed"] for r in res["runs"]]
        assert set(doc["versions"]) >= {"haste_onnx", "onnxruntime", "onnx", "numpy", "python"}
        assert ("latency" in res) == ("latency_argv" in p), p["id"]
        for r in res["runs"]:
            assert -1 <= r["difference"]["accuracy"] <= 1 and r["difference"]["ci95"][0] <= r["difference"]["ci95"][1]


def test_docs_are_what_the_stored_results_render_to(render, bench_models):
    out = render.render(BENCH / "results")
    assert (ROOT / "docs" / "results.md").read_text() == out["results.md"], "run python benchmarks/render.py"
    assert (ROOT / "docs" / "tradeoff.svg").read_text() == out["tradeoff.svg"]
    bench = bench_models.render(sorted((BENCH / "results").glob("bench_*.json")))
    assert (ROOT / "docs" / "bench.md").read_text() == bench, "run python benchmarks/bench_models.py --render-only"


def test_rendering_is_deterministic(render, grid):
    a = render.render(BENCH / "results", grid)
    b = render.render(BENCH / "results", json.loads(json.dumps(grid)))
    assert a == b


def test_commands_in_the_docs_parse_and_are_the_grid_argv(render, grid, parser):
    rows = render.points_table(render.load_results(BENCH / "results", grid))
    assert rows
    for row in rows:
        cmd = shlex.split(render.reproduce(row))
        assert cmd[0] == "haste-onnx"
        args = parser.parse_args(cmd[1:])
        assert not args.json
        assert cmd[1:] + ["--json"] == [a.replace("{models_dir}", "$HASTE_ONNX_MODELS") for a in row["point"]["argv"]]


def test_local_links_of_the_results_docs_exist():
    for name in ("results.md", "bench.md"):
        text = (ROOT / "docs" / name).read_text()
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if "://" not in target:
                assert (ROOT / "docs" / target).exists(), f"{name} links to {target}"


# ---- the models folder -----------------------------------------------------------------------------


def test_missing_models_folder_is_one_clear_line(measure, grid, monkeypatch, tmp_path):
    monkeypatch.delenv(measure.MODELS_ENV, raising=False)
    shared = [p for p in grid["points"] if measure.needs_models_dir(p)]
    bundled = [p for p in grid["points"] if not measure.needs_models_dir(p)]
    assert shared and bundled
    assert measure.models_dir(None, bundled) is None  # the bundled points need nothing
    with pytest.raises(SystemExit) as err:
        measure.models_dir(None, shared)
    text = str(err.value.code)
    assert "\n" not in text and "--models-dir" in text and "HASTE_ONNX_MODELS" in text
    with pytest.raises(SystemExit) as err:
        measure.models_dir(str(tmp_path / "nope"), shared)
    assert "does not exist" in str(err.value.code) and "--models-dir" in str(err.value.code)
    monkeypatch.setenv(measure.MODELS_ENV, str(tmp_path))  # a folder without the model
    with pytest.raises(SystemExit) as err:
        measure.models_dir(None, shared)
    assert "resnet18_fmnist.onnx" in str(err.value.code) and "missing" in str(err.value.code)
    (tmp_path / "resnet18_fmnist.onnx").write_bytes(b"x")
    assert measure.models_dir(None, shared) == tmp_path
    assert measure.resolve(shared[0]["argv"], tmp_path)[1] == str(tmp_path / "resnet18_fmnist.onnx")


def test_bench_models_needs_the_models_folder_for_resnet18(bench_models, monkeypatch, tmp_path):
    monkeypatch.delenv(bench_models.MODELS_ENV, raising=False)
    with pytest.raises(SystemExit) as err:
        bench_models.resnet18_path(None, None)
    assert "--models-dir" in str(err.value.code) and "HASTE_ONNX_MODELS" in str(err.value.code)
    with pytest.raises(SystemExit) as err:
        bench_models.resnet18_path(None, str(tmp_path))
    assert "missing" in str(err.value.code)
    (tmp_path / "resnet18_fmnist.onnx").write_bytes(b"x")
    monkeypatch.setenv(bench_models.MODELS_ENV, str(tmp_path))
    assert bench_models.resnet18_path(None, None) == tmp_path / "resnet18_fmnist.onnx"


def test_a_failing_cli_run_is_one_clear_line(measure):
    with pytest.raises(SystemExit) as err:
        measure.run_cli(sys.executable, ["eval", "no_such_model_xyz", "--json"])
    text = str(err.value.code)
    assert "\n" not in text and "exited with 3" in text and "no_such_model_xyz" in text


def test_select_by_pattern(measure, grid):
    assert {p["id"] for p in measure.select(grid["points"], ["resnet20/*"])} == \
        {p["id"] for p in grid["points"] if p["model"] == "resnet20"}
    with pytest.raises(SystemExit):
        measure.select(grid["points"], ["nothing/here"])


# ---- trimming an eval --json object ----------------------------------------------------------------


def _eval_json(seeds=(0, 1), allocation=True):
    def run(seed):
        r = {"seed": seed, "accuracy": 0.9, "correct": 9000, "ci95": [0.89, 0.91], "ci_method": "Wilson score",
             "difference": {"accuracy": -0.01, "ci95": [-0.02, -0.005], "ci_method": "bootstrap"},
             "agreement": 0.97, "haste_layers": 13, "layers": [{"big": list(range(50))}],
             "totals": {"conv_mac_reduction": 0.3, "conv_mac_reduction_with_overheads": 0.27,
                        "replaced_mac_reduction": 0.33, "replaced_mac_reduction_with_overheads": 0.3,
                        "channel_ratio": 0.66, "overhead_ops": 1e6}, "seconds": 12.345}
        if allocation:
            r["allocation"] = {"probe": "synthetic", "rule": "budget", "target_cut": None, "budget_hyperplanes": 13,
                               "budget_draws": 4, "estimated_cut": 0.33, "layers": {"/a/Conv": {"hyperplanes": 12,
                                                                                           "tile": [4, 4]}},
                               "measurements": [{"big": list(range(100))}]}
        return r

    return {"command": "eval", "model": "/m/r.onnx", "model_name": None, "versions": {"haste_onnx": "0.1.0"},
            "data": {"images": 500}, "settings": {},
            "original": {"accuracy": 0.91, "correct": 9100, "ci95": [0.9, 0.92], "conv_macs": 5e8, "conv_layers": 20,
                         "layers_with_unknown_macs": 0, "seconds": 80.01},
            "runs": [run(s) for s in seeds], "summary": {}}


def test_trim_eval_keeps_what_the_tables_use(measure):
    t = measure.trim_eval(_eval_json())
    assert t["images"] == 500 and t["original"]["conv_macs"] == 5e8
    assert [r["seed"] for r in t["runs"]] == [0, 1]
    r = t["runs"][0]
    assert set(r) == {"seed", "accuracy", "difference", "agreement", "haste_layers", "totals", "seconds",
                      "allocation", "probe_seed"}
    assert r["probe_seed"] == 0 and "measurements" not in r["allocation"] and r["seconds"] == 12.3
    assert set(r["totals"]) == set(measure.TOTALS)
    assert "allocation" not in measure.trim_eval(_eval_json(allocation=False))["runs"][0]


def test_dumps_round_trips_and_keeps_lists_on_one_line(measure):
    doc = {"id": "a/b", "argv": ["eval", "{models_dir}/x.onnx", "--seeds", "0", "1"], "x": {"ci95": [-0.1, 2e-05]},
           "nested": [{"a": 1}, {"b": [1, 2]}], "s": "q\"uote [x]"}
    text = measure.dumps(doc)
    assert json.loads(text) == doc
    assert '"argv": ["eval", "{models_dir}/x.onnx", "--seeds", "0", "1"]' in text


# ---- a synthetic grid through the renderer -----------------------------------------------------------


def _entry(model, tag, group, argv_opts, seeds, change=None):
    model_arg = {"resnet18": "{models_dir}/resnet18_fmnist.onnx"}.get(model, model)
    seed_opts = ["--seeds", *map(str, seeds)] if len(seeds) > 1 else ["--seed", str(seeds[0])]
    e = {"id": f"{model}/{tag}", "model": model, "group": group,
         "argv": ["eval", model_arg, *argv_opts, *seed_opts, "--threads", "1", "--json"]}
    if change:
        e["change"] = change
    return e


ORIGINAL = {"resnet18": 0.9131, "resnet20": 0.9166, "mobilenetv2": 0.9}


def _point(entry, accs, cut, cut_o, top5=None):
    orig = ORIGINAL[entry["model"]]
    conv, dense = 550e6, 500e6
    runs = []
    for seed, (acc, c, co) in accs.items():
        c, co = (cut, cut_o) if c is None else (c, co)
        run = {"seed": seed, "accuracy": acc,
               "difference": {"accuracy": acc - orig, "ci95": [acc - orig - 0.003, acc - orig + 0.002]},
               "agreement": 0.97, "haste_layers": 13,
               "totals": {"conv_mac_reduction": c, "conv_mac_reduction_with_overheads": co,
                          "replaced_mac_reduction": c * conv / dense,
                          "replaced_mac_reduction_with_overheads": co * conv / dense, "channel_ratio": 1 - c},
               "seconds": 100.0}
        if top5:
            run["top5"] = top5
        runs.append(run)
    return {"id": entry["id"], "argv": entry["argv"], "threads": 1,
            "versions": {"haste_onnx": "0.1.0", "onnxruntime": "1.31.1", "onnx": "1.23.2", "numpy": "2.4.6",
                         "python": "3.11.7"},
            "sources": [{"seeds": list(accs), "git_commit": "c0ffee" * 6 + "abcd", "snapshot": False,
                         "source_dirty": False, "library_sha256": "12" * 32}],
            "machine": {"nproc": 2, "cpu": "Test CPU 9000"},
            "result": {"model": f"/m/{entry['model']}.onnx", "model_sha256": "ab" * 32, "images": 10000,
                       "original": {"accuracy": orig, "ci95": [orig - 0.005, orig + 0.005], "conv_macs": conv,
                                    "conv_layers": 20, "seconds": 90.0},
                       "runs": runs}}


@pytest.fixture
def synthetic(tmp_path, grid, measure):
    mean = ["-L", None, "--merge", "mean"]
    L = lambda n: [mean[0], str(n), *mean[2:]]  # noqa: E731
    entries = [
        _entry("resnet18", "L16", "main", L(16), [0, 1, 2]),
        _entry("resnet18", "L14", "main", L(14), [0, 1, 2]),
        _entry("resnet18", "L12", "main", L(12), [0, 1]),
        _entry("resnet18", "L14_msplit", "split", [*L(14)[:2], "--magnitude-split", "--merge", "mean"], [0]),
        _entry("resnet20", "L14", "main", L(14), [0, 1, 2]),
        _entry("mobilenetv2", "L64_s0_t8_msplit", "mnv2",
               ["--data", "imagenet-samples", "--allow-1x1", "-L", "64", "--sparsity", "0", "--tile", "8",
                "--magnitude-split", "--merge", "mean"], [0]),
        _entry("resnet18", "L10", "main", L(10), [0, 1, 2]),  # in the grid, not measured
    ]
    g = {"models": grid["models"], "points": entries, "quoted": grid["quoted"]}
    r = tmp_path / "results"
    o18 = ORIGINAL["resnet18"]
    docs = [
        _point(entries[0], {0: (o18 - 0.007, None, None), 1: (o18 - 0.008, None, None), 2: (o18 - 0.009, None, None)},
               0.20, 0.17),
        _point(entries[1], {s: (o18 - 0.010 - 0.001 * s, 0.28 + 0.001 * s, 0.25 + 0.001 * s) for s in (0, 1, 2)},
               None, None),
        _point(entries[2], {0: (o18 - 0.019, None, None), 1: (o18 - 0.021, None, None)}, 0.35, 0.32),
        _point(entries[3], {0: (0.9111, None, None)}, 0.18, 0.155),
        _point(entries[4], {s: (0.9138, None, None) for s in (0, 1, 2)}, 0.111, 0.043),
        _point(entries[5], {0: (0.9, None, None)}, 0.025, -0.70,
               top5={"top5_set_agreement": 0.75, "top5_hit_agreement": 1.0, "top5_overlap_mean": 4.75,
                     "top5_overlap_min": 4, "original_top1": 0.9, "original_top5": 1.0, "rewritten_top1": 0.9,
                     "rewritten_top5": 1.0}),
    ]
    for d in docs:
        measure.write_point(r, d)
    return r, g


def _row(text, start):
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert lines, f"no line starting with {start!r}"
    return lines[0]


def test_synthetic_tables(render, synthetic):
    results, g = synthetic
    text = render.render(results, g)["results.md"]
    assert _row(text, "| 16 | 0 1 2 |") == (
        "| 16 | 0 1 2 | 90.51% ± 0.10 | -0.80 ± 0.10 pt | [-1.20, -0.50] pt | 97.00% ± 0.00 | 20.0% ± 0.0 "
        "| 17.0% ± 0.0 | 22.0% ± 0.0 | 18.7% ± 0.0 | 0.800 ± 0.000 |")
    r14 = _row(text, "| 14 | 0 1 2 |")
    assert "| -1.10 ± 0.10 pt | [-1.50, -0.80] pt |" in r14 and "| 28.1% ± 0.1 | 25.1% ± 0.1 |" in r14
    assert "| 12 | 0 1 | 89.31% ± 0.14 | -2.00 ± 0.14 pt |" in text
    assert "Points with fewer than 3 seeds (time): L = 12 (seeds 0 1)." in text
    best125 = _row(text, "| <= 1.25 pt |")
    assert best125.startswith("| <= 1.25 pt | 14 | 0 1 2 | -1.10 ± 0.10 pt | 28.1% ± 0.1 | 25.1% ± 0.1 |")
    assert ("`haste-onnx eval $HASTE_ONNX_MODELS/resnet18_fmnist.onnx -L 14 --merge mean --seeds 0 1 2 --threads 1`"
            in best125)
    assert _row(text, "| <= 1 pt |").startswith("| <= 1 pt | 16 | 0 1 2 | -0.80 ± 0.10 pt |")
    assert _row(text, "| 10 | -10.50 pt (80.80%) | not run |")  # the quoted simulation beside the measurement
    assert "| 14 | 2 | 90.11% | -1.20 pt [-1.50, -1.00] | 97.00% | 28.2% | 25.2% |" in text
    assert _row(text, "| 14 | 0 (1 seed) |").startswith(
        "| 14 | 0 (1 seed) | 91.11% | -0.20 pt [-0.50, +0.00] | -1.00 pt | 18.0% | 15.5% | 28.0% (25.0%) |")
    assert "| 14 | 0 1 2 | 91.38% ± 0.00 | -0.28 ± 0.00 pt |" in text
    mn = _row(text, "| `haste-onnx eval mobilenetv2")
    assert "| 97% | 75% | 100% | 4.75 of 5 |" in mn and "| 2.5% | -70.0% |" in mn
    assert "- ResNet-18: L = 10, 8 not measured." in text
    assert "| CIFAR-10 | ResNet34 | 46.72% (journal: 46.2%) | -1.25 pt |" in text  # quoted, from grid.json
    assert "machine: 2 CPUs (nproc), Test CPU 9000" in text and "c0ffee" in text


def test_synthetic_svg_is_wellformed(render, synthetic):
    results, g = synthetic
    svg = ET.fromstring(render.render(results, g)["tradeoff.svg"])
    circles = [e for e in svg.iter() if e.tag.endswith("circle")]
    # filled + hollow per point: 3 ResNet-18 + 1 split + 1 ResNet-20, plus a legend mark per series shown
    assert len(circles) == 2 * 5 + 3


def test_mobilenet_without_top5_renders_na(render, synthetic, measure):
    results, g = synthetic
    f = results / "mobilenetv2" / "L64_s0_t8_msplit.json"
    doc = json.loads(f.read_text())
    del doc["result"]["runs"][0]["top5"]  # what measure.py stores: eval reports no top-5
    measure.write_point(results, doc)
    mn = _row(render.render(results, g)["results.md"], "| `haste-onnx eval mobilenetv2")
    assert "| 97% | n/a | n/a |" in mn


def test_render_main_refuses_a_stray_result_and_checks(render, synthetic, tmp_path, measure):
    results, g = synthetic
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps(g))
    out = tmp_path / "docs"
    out.mkdir()
    args = ["--results", str(results), "--grid", str(grid_file), "--out", str(out)]
    assert render.main(args + ["--check"]) == 1  # nothing rendered yet
    assert render.main(args) == 0 and (out / "results.md").exists() and (out / "tradeoff.svg").exists()
    assert render.main(args + ["--check"]) == 0
    stray = json.loads((results / "resnet20" / "L14.json").read_text())
    stray["id"] = "resnet20/L99"
    measure.write_point(results, stray)
    with pytest.raises(SystemExit) as err:
        render.main(args)
    assert "L99" in str(err.value.code)
