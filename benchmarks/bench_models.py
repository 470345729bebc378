#!/usr/bin/env python3
"""Whole-model latency of HASTE: `haste-onnx bench` for ResNet-20 and ResNet-18, rendered to docs/bench.md.

One command (from the repository root):

    python benchmarks/bench_models.py --models-dir ../shared/models [--repeats 50] [--clock auto]

For each model (the bundled ResNet-20; the ResNet-18 of record, `resnet18_fmnist.onnx` in the shared
models folder given by `--models-dir DIR` or `$HASTE_ONNX_MODELS`, or `--resnet18 PATH`), batch 1 and 8,
and 2 and 1 intra-op threads, and for the same ResNet-18 with a 224x224 input (`resnet18_224`, the
test images resized; batch 1), it runs `haste-onnx bench MODEL --batch B --threads T ... --json` as a
subprocess (`<python> -m haste_onnx.cli`; the CLI only, no package internals) with the rewriter's
default settings (L per layer from the data-free probe) on the first Fashion-MNIST test images. Each
run is stored, trimmed to what the table shows plus its argv, as
`benchmarks/results/bench_<model>_b<B>_t<T>.json`, and the markdown table docs/bench.md is rendered from
those files (`--render-only` renders without measuring; docs/results.md includes the same table).

`--clock auto` (the default) times runs with 1 thread with the process CPU clock (robust to other
processes on a shared machine) and runs with 2 threads with the wall clock; `--clock wall` or
`--clock cpu` uses one clock for all. These are not timed tests: the numbers are ratios measured on
one machine, and the files say which.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "bench.md"
MODELS_ENV = "HASTE_ONNX_MODELS"
RESNET18_FILE = "resnet18_fmnist.onnx"
BATCHES = (1, 8)
THREADS = (2, 1)


def git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def resnet18_path(resnet18: str | None, models_dir: str | None) -> Path:
    """The ResNet-18 of record: --resnet18 PATH, else resnet18_fmnist.onnx in --models-dir or $HASTE_ONNX_MODELS;
    a one-line error when neither is given or the file is missing."""
    if resnet18:
        path = Path(resnet18).expanduser()
    else:
        folder = models_dir or os.environ.get(MODELS_ENV)
        if not folder:
            raise SystemExit(f"bench_models.py: error: the ResNet-18 needs the shared models folder: pass "
                             f"--models-dir DIR or set {MODELS_ENV}=DIR (e.g. ../shared/models), or --resnet18 PATH")
        path = Path(folder).expanduser() / RESNET18_FILE
    if not path.is_file():
        raise SystemExit(f"bench_models.py: error: {path} is missing")
    return path


def at_input_size(src: Path, size: int, dest: Path) -> Path:
    """A copy of a fully convolutional model (global pooling before the classifier) with an HxW = size input."""
    import onnx

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = size
    dims[3].dim_value = size
    del model.graph.value_info[:]  # shapes are inferred again for the new size
    onnx.save(model, str(dest))
    return dest


def bench_argv(model: str, batch: int, threads: int, args) -> list:
    cpu = args.clock == "cpu" or (args.clock == "auto" and threads == 1)
    argv = ["bench", model, "--batch", str(batch), "--threads", str(threads), "--warmup", str(args.warmup),
            "--repeats", str(args.repeats), "--profile-runs", str(args.profile_runs)]
    argv += ["--cpu-time"] if cpu else []
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    return argv + ["--json"]


def trim(doc: dict) -> dict:
    """What the table shows, from a `bench --json` object (and the row's name, argv and git state)."""
    lat, prof, mem = doc["latency"], doc.get("profile"), doc.get("memory")
    return {"model_name": doc["model_name"], "argv": doc.get("argv"), "model": doc["model"], "git": doc.get("git"),
            "seconds": doc.get("seconds"), "versions": doc["versions"],
            "settings": {k: doc["settings"][k] for k in ("batch", "threads", "clock")},
            "latency_original_ms": doc["latency_original_ms"], "latency_rewritten_ms": doc["latency_rewritten_ms"],
            "speedup": doc["speedup"], "latency": {"pair_speedup": {k: lat["pair_speedup"][k] for k in ("p25", "p75")}},
            "ideal": {k: doc["ideal"][k] for k in ("reduction", "speedup", "measured_over_ideal",
                                                   "conv_share_original", "amdahl_speedup")},
            "profile": {"replaced_speedup": prof["replaced_speedup"]} if prof else None,
            "memory": {k: mem[k] for k in ("original_peak_mb", "rewritten_peak_mb")} if mem else None,
            **({"probe_seconds": doc["probe_seconds"]} if doc.get("probe_seconds") is not None else {})}


def measure(name: str, model: str, batch: int, threads: int, args) -> dict:
    argv = bench_argv(model, batch, threads, args)
    start = time.time()
    proc = subprocess.run([args.python, "-m", "haste_onnx.cli", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"bench_models.py: error: `haste-onnx {' '.join(argv)}` exited with {proc.returncode}: {tail}")
    doc = json.loads(proc.stdout)
    return trim({**doc, "model_name": name, "argv": argv, "git": git_state(), "seconds": time.time() - start})


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def render(files) -> str:
    docs = [json.loads(Path(f).read_text()) for f in files]
    order = {"resnet20": 0, "resnet18": 1, "resnet18_224": 2}
    docs.sort(key=lambda d: (order.get(d["model_name"], 9), -d["settings"]["threads"], d["settings"]["batch"]))
    lines = ["# Whole-model latency: original vs HASTE rewrite", "",
             "Generated by `python benchmarks/bench_models.py` (`haste-onnx bench MODEL --json` per row) from "
             "benchmarks/results/bench_*.json. The rewriter's defaults (L per layer from the data-free probe for no "
             "more probe disturbance than L=13 everywhere, mean of 4 draws; tile 4x4, sparsity 2/3, seed 0), "
             "input: the "
             "first B Fashion-MNIST test images. Both models run in one process, alternating, with identical "
             "session options (all graph optimisations, T intra-op threads); medians of the timed runs.", "",
             "- **speed-up**: median latency original / rewritten; in brackets the quartiles of the per-pair ratios.",
             "- **r**: measured cut of all conv MACs on the batch, hashing/centring/merging ops counted as MACs "
             "(HasteConv counters); **ideal** = 1/(1 - r).",
             "- **conv share**: convs' share of the original's kernel time (onnxruntime profiler); **bound** = "
             "1/((1 - s) + s (1 - r)).",
             "- **replaced layers**: the replaced layers' summed profiler time, original Conv (with the Relu/Add "
             "onnxruntime fuses into it) / HasteConv.",
             "- **peak MB**: peak resident size (VmHWM) of a child process per model that loads it and runs the batch "
             "(Python and onnxruntime included).", "",
             "| model | B | T | clock | original ms | rewritten ms | speed-up | r | ideal | measured/ideal | "
             "conv share | bound | replaced layers | peak MB orig / rew |",
             "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for d in docs:
        s, i, p, m = d["settings"], d["ideal"], d["profile"], d["memory"]
        ps = d["latency"]["pair_speedup"]
        clock = "CPU" if s["clock"].startswith("process") else "wall"
        mem = f"{m['original_peak_mb']:.0f} / {m['rewritten_peak_mb']:.0f}" if m else "-"
        lines.append(
            f"| {d['model_name']} | {s['batch']} | {s['threads']} | {clock} | {d['latency_original_ms']:.2f} | "
            f"{d['latency_rewritten_ms']:.2f} | {_x(d['speedup'])} ({_x(ps['p25'])}-{_x(ps['p75'])}) | "
            f"{_pct(i['reduction'])} | {_x(i['speedup'])} | {_pct(i['measured_over_ideal'])} | "
            f"{_pct(i['conv_share_original'])} | {_x(i['amdahl_speedup'])} | "
            f"{_x(p['replaced_speedup']) if p else '-'} | {mem} |")
    probes = {d["model_name"]: d["probe_seconds"] for d in docs if d.get("probe_seconds") is not None}
    if probes:
        lines += ["", "The probe (once per model, 2 threads, wall clock, part of every default rewrite): "
                  + ", ".join(f"{n} {sec:.0f} s" for n, sec in sorted(probes.items(), key=lambda x: order.get(x[0], 9)))
                  + "."]
    if docs:
        v, g = docs[0]["versions"], docs[0].get("git", {})
        commits = sorted({(d.get("git") or {}).get("commit") or "?" for d in docs})
        lines += ["", f"onnxruntime {v['onnxruntime']}, Python {v['python']}, {v['machine']}, {v['cpus']} CPUs; "
                      f"commit {', '.join(c[:12] for c in commits)}"
                      + (" (working tree had changes)" if any((d.get("git") or {}).get("dirty") for d in docs) else "")
                      + ". The machine may have been shared with other work: compare ratios within a row, "
                        "and prefer the CPU-clock rows (T=1) on a busy machine."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=None, help=f"the shared models folder (default ${MODELS_ENV})")
    parser.add_argument("--resnet18", default=None, metavar="PATH", help=f"the ResNet-18 (default <models dir>/{RESNET18_FILE})")
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18", "resnet18_224"],
                        choices=["resnet20", "resnet18", "resnet18_224"],
                        help="resnet18_224: the ResNet-18 with a 224x224 input (the test images resized), batch 1 only")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile-runs", type=int, default=10)
    parser.add_argument("--clock", choices=["auto", "wall", "cpu"], default="auto",
                        help="auto: CPU clock with 1 thread, wall clock otherwise (default)")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: the usual places)")
    parser.add_argument("--python", default=sys.executable, help="the Python whose haste_onnx runs (default this one)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder (default benchmarks/results)")
    parser.add_argument("--doc", default=str(DOC), help="the markdown table (default docs/bench.md)")
    parser.add_argument("--render-only", action="store_true", help="only render the table from the stored files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        r18 = resnet18_path(args.resnet18, args.models_dir) if {"resnet18", "resnet18_224"} & set(args.models) else None
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models:
                model = ("resnet20" if name == "resnet20" else str(r18) if name == "resnet18"
                         else str(at_input_size(r18, 224, Path(tmp) / "resnet18_224.onnx")))
                for threads in args.threads:
                    for batch in (args.batches if name != "resnet18_224" else [1]):
                        print(f"{name} ({model}), batch {batch}, {threads} threads ...", file=sys.stderr, flush=True)
                        doc = measure(name, model, batch, threads, args)
                        path = out / f"bench_{name}_b{batch}_t{threads}.json"
                        path.write_text(json.dumps(doc, indent=1) + "\n")
                        print(f"  {doc['latency_original_ms']:.3f} ms -> {doc['latency_rewritten_ms']:.3f} ms, "
                              f"speed-up {doc['speedup']:.2f}x, ideal {doc['ideal']['speedup']:.2f}x -> {path.name}",
                              file=sys.stderr, flush=True)
    files = sorted(out.glob("bench_*.json"))
    Path(args.doc).write_text(render(files))
    print(f"wrote {args.doc} from {len(files)} result files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
