"""One-off: old make_results.py grid + 141 per-seed files -> benchmarks/grid.json + one trimmed file per point."""
import importlib.util, json, shlex, sys
from pathlib import Path
ROOT = Path("/work/wt-results")
spec = importlib.util.spec_from_file_location("mr", ROOT / "benchmarks" / "make_results.py")
mr = importlib.util.module_from_spec(spec); spec.loader.exec_module(mr)
OLD = ROOT / "benchmarks" / "results"
MODEL_ARGS = dict(mr.MODEL_ARGS, resnet18="{models_dir}/resnet18_fmnist.onnx")
LAT = ["--batch", "8", "--threads", "1", "--warmup", "3", "--repeats", "20", "--cpu-time", "--profile-runs", "0",
       "--no-memory", "--json"]
timed = mr.latency_points()
points = []
for p in mr.grid():
    cmd = shlex.split(mr.cli_command(p, MODEL_ARGS[p["model"]], p["seeds"], 1))
    assert cmd[0] == "haste-onnx"
    e = {"id": f"{p['model']}/{p['tag']}", "model": p["model"], "group": p["group"]}
    if p.get("change"):
        e["change"] = p["change"]
    e["argv"] = cmd[1:] + ["--json"]
    if p in timed:
        opts = cmd[3:cmd.index("--seeds") if "--seeds" in cmd else cmd.index("--seed")]
        e["latency_argv"] = ["bench", cmd[2], *opts, "--seed", str(p["seeds"][0]), *LAT]
    points.append(e)
grid = {
 "about": "The experiment grid of docs/results.md: one entry per point, each the exact argv of the `haste-onnx` "
          "command that measures it (benchmarks/measure.py runs it, benchmarks/render.py renders the stored results). "
          "{models_dir} is the shared models folder (--models-dir or $HASTE_ONNX_MODELS). Groups: main (one L for every "
          "layer, the published method), split (--magnitude-split), defaults (ResNet-20 with the rewriter's defaults), "
          "ablation (ResNet-18 beyond the paper, issue #8), mnv2 (MobileNetV2 fidelity). latency_argv: the "
          "`haste-onnx bench` run whose speed-up the ablation table shows (seed 0).",
 "models": {
   "resnet20": {"arg": "resnet20", "about": "bundled (models/resnet20_fmnist.onnx)"},
   "resnet18": {"arg": "{models_dir}/resnet18_fmnist.onnx", "shared": True,
                "about": "the ResNet-18 of record, from the shared models folder"},
   "resnet18_ours": {"arg": "resnet18", "about": "the zoo's resnet18, trained here by models/train.py"},
   "mobilenetv2": {"arg": "mobilenetv2", "about": "python models/export_mobilenetv2.py (zoo name mobilenetv2)"}},
 "points": points,
 "quoted": {
   "about": "Numbers quoted from the notes, not measured here.",
   "resnet18_accuracy_of_record": mr.RESNET18_ACCURACY_OF_RECORD,
   "simulation_resnet18": {"source": "../shared/notes/platform.md",
       "fields": ["L", "accuracy", "difference_pt", "cut_3x3", "cut_3x3_with_overheads", "channel_ratio"],
       "rows": [list(r) for r in mr.SIMULATION_RESNET18]},
   "simulation_resnet20": {"source": "../shared/notes/platform.md",
       "fields": ["L", "difference_pt", "cut_3x3", "cut_3x3_with_overheads"],
       "rows": [list(r) for r in mr.SIMULATION_RESNET20]},
   "paper": {"source": "../shared/notes/method.md", "fields": ["dataset", "model", "flops_reduction", "accuracy"],
             "rows": [list(r) for r in mr.PAPER]}},
}
sys.path.insert(0, str(ROOT / "benchmarks"))
import measure
out_dir = Path(sys.argv[1])
(out_dir / "grid.json").write_text(measure.dumps(grid))

TOT = ("conv_mac_reduction", "conv_mac_reduction_with_overheads", "replaced_mac_reduction",
       "replaced_mac_reduction_with_overheads", "channel_ratio")
def trim_alloc(a):
    keep = ("probe", "rule", "target_cut", "budget_hyperplanes", "budget_draws", "estimated_cut")
    return {**{k: a.get(k) for k in keep}, "layers": a["layers"]}
def r6(x):
    return x if not isinstance(x, float) else float(f"{x:.10g}")
n_files = 0
for p, e in zip(mr.grid(), points):
    docs = sorted((json.loads(f.read_text()) for f in (OLD / p["model"]).glob(f"{p['tag']}_seed*.json")
                   if f.stem.rsplit("_seed", 1)[0] == p["tag"]), key=lambda d: d["seed"])
    if not docs:
        print("no files for", e["id"]); continue
    n_files += len(docs)
    assert [d["seed"] for d in docs] == list(p["seeds"]), (e["id"], [d["seed"] for d in docs])
    d0 = docs[0]
    runs = []
    for d in docs:
        (r,) = d["runs"]
        run = {"seed": r["seed"], "accuracy": r["accuracy"],
               "difference": {"accuracy": r6(r["difference"]["accuracy"]), "ci95": [r6(x) for x in r["difference"]["ci95"]]},
               "agreement": r["agreement"], "haste_layers": r["haste_layers"],
               "totals": {k: r6(r["totals"][k]) for k in TOT}, "seconds": round(r["seconds"], 1)}
        if d.get("allocation"):
            run["allocation"] = trim_alloc(d["allocation"])
            if "probe_seed" in d:
                run["probe_seed"] = d["probe_seed"]
        if d.get("fidelity"):
            f = d["fidelity"]
            run["top5"] = {k: f[k] for k in ("top5_set_agreement", "top5_hit_agreement", "top5_overlap_mean",
                                             "top5_overlap_min", "original_top1", "original_top5",
                                             "rewritten_top1", "rewritten_top5")}
        runs.append(run)
    o = d0["original"]
    assert all(d["original"]["accuracy"] == o["accuracy"] for d in docs)
    result = {"model": d0["model"], "model_sha256": d0["model_sha256"], "images": d0["images"],
              "original": {"accuracy": o["accuracy"], "ci95": [r6(x) for x in o["ci95"]], "conv_macs": o["conv_macs"],
                           "conv_layers": o["conv_layers"], "seconds": round(o["seconds"], 1)},
              "runs": runs}
    if any(d.get("conv_macs_3x3") for d in docs):
        result["conv_macs_3x3"] = next(d["conv_macs_3x3"] for d in docs if d.get("conv_macs_3x3"))
    lat = next((d["latency"] for d in docs if d.get("latency")), None)
    if lat:
        result["latency"] = {k: (r6(v) if isinstance(v, float) else v) for k, v in lat.items() if k != "library_sha256"}
    prov = []
    for d in docs:
        src = {"git_commit": d["git_commit"], "snapshot": d.get("snapshot"), "source_dirty": d.get("source_dirty"),
               "library_sha256": d["library_sha256"]}
        match = next((x for x in prov if {k: x[k] for k in src} == src), None)
        if match: match["seeds"].append(d["seed"])
        else: prov.append({"seeds": [d["seed"]], **src})
    assert all(d["versions"] == d0["versions"] and d["machine"]["cpu"] == d0["machine"]["cpu"] for d in docs)
    out = {"id": e["id"], "argv": e["argv"], "threads": d0["settings"]["threads"],
           "versions": {**d0["versions"], "python": d0["python"]}, "sources": prov,
           "machine": {"nproc": d0["machine"]["nproc"], "cpu": d0["machine"]["cpu"]},
           "converted_from": [f"{p['tag']}_seed{d['seed']}.json: {d['command']}" for d in docs],
           "result": result}
    measure.write_point(out_dir / "results", out)
print("converted", n_files, "files into", len(points), "points")
