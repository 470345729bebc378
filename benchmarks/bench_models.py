#!/usr/bin/env python3
"""Whole-model latency of HASTE: `haste-onnx bench` for ResNet-20 and ResNet-18, written to benchmarks/results/.

One command (from the repository root):

    python benchmarks/bench_models.py [--resnet18 PATH] [--repeats 50] [--clock auto]

For each model (the bundled ResNet-20, and ResNet-18 from
`../shared/models/resnet18_fmnist.onnx` or `--resnet18 PATH`, or the zoo
name `resnet18`), batch 1 and 8, and 2 and 1 intra-op threads, and for the
same ResNet-18 with a 224x224 input (`resnet18_224`, the test images
resized; batch 1), it runs
`haste_onnx.bench.bench` (what `haste-onnx bench MODEL --json` prints) with
the rewriter's default settings (L per layer from the data-free probe, as
`haste-onnx bench MODEL` chooses it; probed once per model and input size)
on the first Fashion-MNIST test images. Each run
is stored as `benchmarks/results/bench_<model>_b<B>_t<T>.json`, and the
markdown table `benchmarks/results/bench.md` is rendered from those files
(`--render-only` renders without measuring).

`--clock auto` (the default) times runs with 1 thread with the process CPU
clock (robust to other processes on a shared machine) and runs with 2
threads with the wall clock; `--clock wall` or `--clock cpu` uses one clock
for all. These are not timed tests: the numbers are ratios measured on one
machine, and the files say which.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RESNET18 = ROOT.parent / "shared" / "models" / "resnet18_fmnist.onnx"
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


def model_spec(name: str, resnet18: str):
    if name == "resnet20":
        return "resnet20"
    path = Path(resnet18).expanduser() if resnet18 else DEFAULT_RESNET18
    return str(path) if path.is_file() or resnet18 else "resnet18"


_ALLOCATIONS = {}  # model name -> (hashing options, policy, allocation JSON, probe seconds): the probe runs once


def default_options(name: str, model, mean, std):
    """The rewriter's defaults for `model`, exactly as `haste-onnx bench MODEL` resolves them."""
    from haste_onnx.cli import allocated_options, build_parser

    if name not in _ALLOCATIONS:
        args = build_parser().parse_args(["bench", "model"])
        say = lambda text: print(f"  {text}", file=sys.stderr, flush=True)  # noqa: E731
        start = time.time()
        hashing, policy, allocation = allocated_options(args, model, 2, mean, std, say)
        _ALLOCATIONS[name] = (hashing, policy, allocation.to_json() if allocation is not None else None,
                              time.time() - start)
    return _ALLOCATIONS[name]


def measure(name: str, spec: str, batch: int, threads: int, args) -> dict:
    from haste_onnx import data as hd
    from haste_onnx.allocate import allocation_line
    from haste_onnx.bench import BenchOptions, bench, versions
    from haste_onnx.eval_command import load_named_model
    from haste_onnx.evaluate import prepare_images

    loaded, entry = load_named_model(spec)
    model = loaded.model if name != "resnet18_224" else at_input_size(loaded.model, 224)
    directory = hd.find_fashion_mnist(args.data_dir, split="test")
    raw, _ = hd.load_idx_dataset(directory, "test")
    mean, std = (entry.mean, entry.std) if entry else ((hd.FASHION_MNIST_MEAN,), (hd.FASHION_MNIST_STD,))
    images = prepare_images(raw[:batch], model, mean, std)  # 224: 28x28 resized bilinearly
    cpu = args.clock == "cpu" or (args.clock == "auto" and threads == 1)
    hashing, policy, allocation, probe_seconds = default_options(name, model, mean, std)
    if allocation is not None:
        print(f"  {allocation_line(allocation)}", file=sys.stderr, flush=True)
    options = BenchOptions(hashing=hashing, policy=policy, batch=batch, threads=threads, warmup=args.warmup,
                           repeats=args.repeats, cpu_time=cpu, profile_runs=args.profile_runs)
    start = time.time()
    result = bench(model, images, options)
    return {"command": "bench", "model": str(loaded.path), "model_name": name, "versions": versions(),
            "git": git_state(), "seconds": time.time() - start,
            "data": {"source": "fashion-mnist", "split": "test", "where": str(directory), "images": batch,
                     "mean": list(mean), "std": list(std)},
            "allocation": allocation, "probe_seconds": probe_seconds, **result}


def at_input_size(model, size: int):
    """A copy of a fully convolutional model (global pooling before the classifier) with an HxW = size input."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    dims = out.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = size
    dims[3].dim_value = size
    del out.graph.value_info[:]  # shapes are inferred again for the new size
    return out


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
    parser.add_argument("--resnet18", default=None, metavar="PATH",
                        help=f"ResNet-18 ONNX file (default {DEFAULT_RESNET18}, else the zoo's resnet18)")
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
    parser.add_argument("--out", default=str(RESULTS), help="results folder (default benchmarks/results)")
    parser.add_argument("--render-only", action="store_true", help="only render bench.md from the stored files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        for name in args.models:
            spec = model_spec(name, args.resnet18)
            for threads in args.threads:
                for batch in (args.batches if name != "resnet18_224" else [1]):
                    print(f"{name} ({spec}), batch {batch}, {threads} threads ...", file=sys.stderr, flush=True)
                    doc = measure(name, spec, batch, threads, args)
                    path = out / f"bench_{name}_b{batch}_t{threads}.json"
                    path.write_text(json.dumps(doc, indent=1) + "\n")
                    print(f"  {doc['latency_original_ms']:.3f} ms -> {doc['latency_rewritten_ms']:.3f} ms, "
                          f"speed-up {doc['speedup']:.2f}x, ideal {doc['ideal']['speedup']:.2f}x -> {path.name}",
                          file=sys.stderr, flush=True)
    files = sorted(out.glob("bench_*.json"))
    (out / "bench.md").write_text(render(files))
    print(f"wrote {out / 'bench.md'} from {len(files)} result files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
