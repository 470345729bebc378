#!/usr/bin/env python3
"""Measure the points of benchmarks/grid.json with the `haste-onnx` CLI and store one small JSON per point.

Regenerate everything (from the repository root; hours on 2 cores), then render:

    python benchmarks/measure.py --models-dir ../shared/models --rerun   # or HASTE_ONNX_MODELS=../shared/models
    python benchmarks/render.py                                          # docs/results.md from the stored files

Each grid point holds the exact argv of one `haste-onnx` command (`eval ... --json`, and for the latency
column `bench ... --json`); this script runs it as `<python> -m haste_onnx.cli ARGV` in a subprocess, so
it uses only the CLI, never the package's internals. `{models_dir}` in an argv is the shared models folder:
`--models-dir DIR` or `$HASTE_ONNX_MODELS` (needed only by points that read it). The result, trimmed to
what docs/results.md shows, is written to benchmarks/results/<model>/<tag>.json (the point's id) with the
argv it ran, the versions, the git commit and the op library's sha256.

Points with a stored file are skipped unless `--rerun`; `--only ID...` (fnmatch patterns, e.g.
`resnet20/*`) picks points; `--limit N` passes `--limit N` to eval (a quick try: use another
`--results` folder, the stored files are for all images). The ResNet-20 points need only this repository:

    python benchmarks/measure.py --only resnet20/L14 --limit 500 --results /tmp/try
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "benchmarks" / "grid.json"
RESULTS = ROOT / "benchmarks" / "results"
MODELS_ENV = "HASTE_ONNX_MODELS"
PLACEHOLDER = "{models_dir}"
TOTALS = ("conv_mac_reduction", "conv_mac_reduction_with_overheads", "replaced_mac_reduction",
          "replaced_mac_reduction_with_overheads", "channel_ratio")
ALLOCATION_KEYS = ("probe", "rule", "target_cut", "budget_hyperplanes", "budget_draws", "estimated_cut")
LATENCY_KEYS = ("latency_original_ms", "latency_rewritten_ms", "speedup")


class MeasureError(SystemExit):
    """A one-line error for the user (exit code 2)."""

    def __init__(self, text: str):
        super().__init__(f"measure.py: error: {text}")


def load_grid(path: Path = GRID) -> dict:
    return json.loads(Path(path).read_text())


def result_path(results: Path, point_id: str) -> Path:
    return Path(results) / f"{point_id}.json"


def needs_models_dir(point: dict) -> bool:
    return any(PLACEHOLDER in a for a in point["argv"] + point.get("latency_argv", []))


def models_dir(cli_value: Optional[str], points: List[dict]) -> Optional[Path]:
    """The shared models folder the selected points need, or None when none needs it; a one-line error
    when it is needed and not given, not a folder, or lacks a model file a point names."""
    needing = [p for p in points if needs_models_dir(p)]
    if not needing:
        return None
    value = cli_value or os.environ.get(MODELS_ENV)
    if not value:
        raise MeasureError(f"{needing[0]['id']} needs the shared models folder: pass --models-dir DIR or set "
                           f"{MODELS_ENV}=DIR (e.g. ../shared/models)")
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise MeasureError(f"the models folder {folder} (from {'--models-dir' if cli_value else MODELS_ENV}) "
                           "does not exist")
    for p in needing:
        for a in p["argv"]:
            if PLACEHOLDER in a and not Path(a.replace(PLACEHOLDER, str(folder))).is_file():
                raise MeasureError(f"{p['id']} needs {a.replace(PLACEHOLDER, str(folder))}, which is missing")
    return folder


def resolve(argv: List[str], folder: Optional[Path]) -> List[str]:
    return [a.replace(PLACEHOLDER, str(folder)) if PLACEHOLDER in a else a for a in argv]


def run_cli(python: str, argv: List[str]) -> dict:
    """`python -m haste_onnx.cli ARGV` (an argv ending in --json): its JSON output."""
    proc = subprocess.run([python, "-m", "haste_onnx.cli", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise MeasureError(f"`haste-onnx {' '.join(argv)}` exited with {proc.returncode}: {tail}")
    return json.loads(proc.stdout)


def provenance(python: str) -> dict:
    """Which package and op library the CLI runs: version, library sha256, git commit of this checkout."""
    code = ("import haste_onnx, json, sys; print(json.dumps([haste_onnx.__version__, "
            "str(haste_onnx.get_library_path()), sys.version.split()[0]]))")
    version, lib, py = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                                 check=True).stdout)

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--", "haste_onnx", "custom_op", "CMakeLists.txt")
    return {"haste_onnx": version, "python": py, "git_commit": git("rev-parse", "HEAD"),
            "source_dirty": None if status is None else bool(status),
            "library_sha256": hashlib.sha256(Path(lib).read_bytes()).hexdigest()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def conv_macs_3x3(info: dict) -> float:
    """MACs per image of the model's 3x3 convolutions, from `haste-onnx info --json`."""
    return float(sum(r["macs"] for r in info["layers"] if r.get("macs") and list(r.get("kernel") or []) == [3, 3]))


def trim_allocation(a: dict) -> dict:
    return {**{k: a.get(k) for k in ALLOCATION_KEYS}, "layers": a["layers"]}


def trim_eval(doc: dict) -> dict:
    """The numbers docs/results.md uses, from an `eval --json` object."""
    runs = []
    for r in doc["runs"]:
        run = {"seed": r["seed"], "accuracy": r["accuracy"],
               "difference": {"accuracy": r["difference"]["accuracy"], "ci95": r["difference"]["ci95"]},
               "agreement": r["agreement"], "haste_layers": r["haste_layers"],
               "totals": {k: r["totals"][k] for k in TOTALS}, "seconds": round(r["seconds"], 1)}
        alloc = r.get("allocation") or (doc.get("allocation") if len(doc["runs"]) == 1 else None)
        if alloc:
            run["allocation"] = trim_allocation(alloc)
            run["probe_seed"] = r["seed"]
        runs.append(run)
    o = doc["original"]
    return {"model": doc["model"], "images": doc["data"]["images"],
            "original": {"accuracy": o["accuracy"], "ci95": o["ci95"], "conv_macs": o["conv_macs"],
                         "conv_layers": o["conv_layers"], "seconds": round(o["seconds"], 1)},
            "runs": runs}


def latency_settings(argv: List[str]) -> dict:
    def opt(flag, default=None):
        return argv[argv.index(flag) + 1] if flag in argv else default

    return {"batch": int(opt("--batch", 1)), "threads": int(opt("--threads", 2)), "repeats": int(opt("--repeats", 50)),
            "warmup": int(opt("--warmup", 5)), "clock": "process CPU time" if "--cpu-time" in argv else "wall"}


def measure_point(point: dict, folder: Optional[Path], python: str, prov: dict, limit: Optional[int]) -> dict:
    argv = resolve(point["argv"], folder)
    if limit:
        argv = argv[:-1] + ["--limit", str(limit)] + argv[-1:]
    doc = run_cli(python, argv)
    result = trim_eval(doc)
    model_path = Path(doc["model"])
    result["model_sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    result["conv_macs_3x3"] = conv_macs_3x3(run_cli(python, ["info", str(model_path), "--json"]))
    if point.get("latency_argv"):
        bench = run_cli(python, resolve(point["latency_argv"], folder))
        result["latency"] = {**latency_settings(point["latency_argv"]), **{k: bench[k] for k in LATENCY_KEYS},
                             "git_commit": prov["git_commit"]}
    versions = {**doc["versions"], "python": prov["python"]}
    return {"id": point["id"], "argv": point["argv"], **({"limit": limit} if limit else {}),
            "threads": int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 2,
            "versions": versions,
            "sources": [{"seeds": [r["seed"] for r in result["runs"]], "git_commit": prov["git_commit"],
                         "snapshot": False, "source_dirty": prov["source_dirty"],
                         "library_sha256": prov["library_sha256"]}],
            "machine": {"nproc": os.cpu_count(), "cpu": cpu_model()},
            "result": result}


def dumps(doc: dict) -> str:
    """JSON with one key per line and short lists (of numbers or strings) kept on one line."""
    text = json.dumps(doc, indent=1)
    item = r'(?:"(?:[^"\\]|\\.)*"|[-+.\deE]+|true|false|null)'
    flat = re.compile(r"\[\n\s*(" + item + r"(?:,\n\s*" + item + r")*)\n\s*\]")
    return flat.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text) + "\n"


def write_point(results: Path, doc: dict) -> Path:
    target = result_path(results, doc["id"])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(dumps(doc))
    tmp.replace(target)
    return target


def select(points: List[dict], patterns: Optional[List[str]]) -> List[dict]:
    if not patterns:
        return list(points)
    chosen = [p for p in points if any(fnmatch.fnmatchcase(p["id"], pat) for pat in patterns)]
    if not chosen:
        raise MeasureError(f"no grid point matches {' '.join(patterns)}")
    return chosen


def log(text: str) -> None:
    print(time.strftime("%H:%M:%S"), text, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=Path, default=GRID, help="the grid (default benchmarks/grid.json)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where to store (default benchmarks/results)")
    p.add_argument("--models-dir", help=f"the shared models folder (default ${MODELS_ENV})")
    p.add_argument("--only", nargs="+", metavar="ID", help="points whose id matches (fnmatch), e.g. 'resnet20/*'")
    p.add_argument("--rerun", action="store_true", help="measure points that already have a file too")
    p.add_argument("--limit", type=int, help="first N images only (a quick try; use another --results)")
    p.add_argument("--python", default=sys.executable, help="the Python whose haste_onnx runs (default this one)")
    args = p.parse_args(argv)
    points = select(load_grid(args.grid)["points"], args.only)
    todo = [q for q in points if args.rerun or not result_path(args.results, q["id"]).exists()]
    folder = models_dir(args.models_dir, todo)
    if not todo:
        log("nothing to measure (every selected point has a file; --rerun measures again)")
        return 0
    prov = provenance(args.python)
    log(f"haste-onnx {prov['haste_onnx']}, commit {prov['git_commit']} (dirty {prov['source_dirty']}), "
        f"op library {prov['library_sha256'][:12]}; {len(todo)} point(s)")
    for i, point in enumerate(todo, 1):
        t0 = time.time()
        log(f"[{i}/{len(todo)}] {point['id']}: haste-onnx {' '.join(point['argv'])}")
        doc = measure_point(point, folder, args.python, prov, args.limit)
        path = write_point(args.results, doc)
        r = doc["result"]["runs"][0]
        log(f"    wrote {path} ({time.time() - t0:.0f} s): seed {r['seed']} {100 * r['difference']['accuracy']:+.2f} pt, "
            f"conv MACs cut {100 * r['totals']['conv_mac_reduction_with_overheads']:.1f}% with overheads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
