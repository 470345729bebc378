#!/usr/bin/env python3
"""The real-model suite (issues 16 and 17): each model of benchmarks/suite.json rewritten with the defaults
(and with a calibration folder), timed against the original, beside onnxruntime's int8 quantization, with its
output fidelity on real images; one JSON per row under benchmarks/suite_results/, and docs/suite.md.

    python benchmarks/suite.py --models-dir ../shared/models            # every row (hours on 2 cores)
    python benchmarks/suite.py --only 'resnet18*' yolov8n_640             # some rows (fnmatch on the ids)
    python benchmarks/suite.py --render-only                             # docs/suite.md from the stored rows

Per row (benchmarks/suite_prep.py prepares the files in a work folder, `--work`, default a temporary one):
1. the model (the shared models folder from --models-dir or $HASTE_ONNX_MODELS; an installed package's file;
   a zoo name) with its input fixed where the row says so; the row's images: Fashion-MNIST test images,
   scikit-image's photos and foolbox's 20 ImageNet images, or PP-OCRv4 text lines rendered with DejaVu
   fonts; the first 8 of them, in the model's own input format, are the bench input (`{batch}`);
2. `haste-onnx rewrite {model} {out} --json ...` with the defaults, and again with `--calibration DIR` (32
   images: Fashion-MNIST train images, crops of the photos, or other text lines). Exit 5 ("nothing to do")
   is a result: the row says why, and its speed-up is 1.00x by definition;
3. onnxruntime's int8 static quantization (QDQ, per-channel) calibrated on 256 synthetic probe images;
4. `haste-onnx bench {model} --against {variant} --input {batch} --batch B --threads T ... --json` for the
   rewrite and the int8 model: 1 thread with the process CPU clock, 2 threads with the wall clock, batch 1
   and 8 (the calibrated rewrite: 1 thread only);
5. fidelity on the row's images, computed here in one process: Fashion-MNIST accuracy; top-1 agreement and
   relative output error ||y' - y|| / ||y|| for classifiers (with ImageNet top-1 on foolbox's labels);
   detections kept for YOLOv8n (haste_onnx.measure.compare: same class, IoU >= 0.9, above 0.25 after NMS);
   OCR exact-match accuracy for PP-OCRv4 rec.
A row that cannot be prepared or whose command fails is stored with the stage and the one-line reason.
Every command is run as `<python> -m haste_onnx.cli ARGV` (the CLI only) and stored with its argv.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
# this checkout's haste_onnx, not an older one installed in the environment (here and in the CLI runs)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import suite_prep as prep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "suite.json"
RESULTS = ROOT / "benchmarks" / "suite_results"
DOC = ROOT / "docs" / "suite.md"
NOTHING_TO_DO = 5


class SuiteError(Exception):
    """A stage that failed: the row stores `stage` and the one-line `reason`."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


def load_suite(path: Path = SUITE) -> dict:
    return json.loads(Path(path).read_text())


def select(rows: List[dict], patterns: Optional[List[str]]) -> List[dict]:
    if not patterns:
        return list(rows)
    chosen = [r for r in rows if any(fnmatch.fnmatchcase(r["id"], p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"suite.py: error: no row matches {' '.join(patterns)}")
    return chosen


# ---- argv ------------------------------------------------------------------------------------------------

def rewrite_argv(row: dict, calibration: bool) -> List[str]:
    return (["rewrite", "{model}", "{out}", "--force", "--json", *row.get("rewrite_args", [])]
            + (["--calibration", "{calibration}"] if calibration else []))


def plan_argv(row: dict, name: str) -> Optional[List[str]]:
    """The best plan's rewrite (issue 22): `--int8` with the defaults ("plan"), and after the row's static pass
    ("plan_static", rows with `static_args` only)."""
    base = ["rewrite", "{model}", "{out}", "--force", "--json", *row.get("rewrite_args", [])]
    if name == "plan":
        return base + ["--int8"]
    if name == "plan_static" and row.get("static_args"):
        return base + [*row["static_args"], "--int8"]
    return None


def variant_argv(row: dict, name: str) -> Optional[List[str]]:
    return rewrite_argv(row, name == "haste_calibrated") if name in ("haste", "haste_calibrated") else \
        plan_argv(row, name)


def bench_argv(batch: int, threads: int, clock: str, settings: dict) -> List[str]:
    return (["bench", "{model}", "--against", "{variant}", "--input", "{batch}", "--batch", str(batch),
             "--threads", str(threads), *(["--cpu-time"] if clock == "cpu" else []),
             "--warmup", str(settings["warmup"]), "--repeats", str(settings["repeats"]),
             "--profile-runs", "0", "--no-memory", "--json"])


def resolve(argv: List[str], files: Dict[str, str]) -> List[str]:
    out = []
    for a in argv:
        for key, value in files.items():
            a = a.replace("{" + key + "}", str(value))
        out.append(a)
    return out


def run_cli(python: str, argv: List[str], stage: str, allow_nothing: bool = False) -> Optional[dict]:
    """`python -m haste_onnx.cli ARGV`: its JSON, or None on exit 5 when `allow_nothing` (SuiteError then
    carries nothing: the caller reads the reason from `last_nothing`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    proc = subprocess.run([python, "-m", "haste_onnx.cli", *argv], capture_output=True, text=True, env=env)
    if proc.returncode == NOTHING_TO_DO and allow_nothing:
        run_cli.last_nothing = error_line(proc.stderr) or error_line(proc.stdout)
        return None
    if proc.returncode != 0:
        raise SuiteError(stage, f"exit {proc.returncode}: {error_line(proc.stderr) or error_line(proc.stdout)}")
    return json.loads(proc.stdout)


run_cli.last_nothing = None


def error_line(text: str) -> str:
    """The error line of a CLI's stderr (`haste-onnx <cmd>: error: ...`), else its last line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error: " in ln]
    return (errors[-1] if errors else lines[-1] if lines else "(no output)")[:400]


# ---- trimming what the rows keep ----------------------------------------------------------------------------

def trim_bench(doc: dict) -> dict:
    lat, ideal = doc["latency"], doc["ideal"]
    return {"speedup": doc["speedup"], "pair": lat["pair_speedup"],
            "original_ms": doc["latency_original_ms"], "variant_ms": doc["latency_rewritten_ms"],
            "reduction": ideal["reduction"], "ideal": ideal["speedup"],
            "measured_over_ideal": ideal["measured_over_ideal"],
            "conv_mac_reduction": doc["flops"].get("conv_mac_reduction")}


def trim_plan(doc: dict) -> dict:
    """What the page shows of a `rewrite --int8 --json` object: the int8 tactic, the static pass, HASTE."""
    q = doc.get("int8") or {}
    layers = q.get("layers") or {}
    out = {"int8": {"used": q.get("used"), "reason": q.get("reason"), "calibration": q.get("calibration"),
                    "check_images": q.get("check_images"), "layers": len(layers),
                    "quantized": sum(r.get("tactic") == "int8" for r in layers.values()) if q.get("used") else 0,
                    "kept_float": {n: r.get("reason") for n, r in layers.items() if r.get("tactic") == "float"},
                    "fidelity": q.get("fidelity"), "speed": q.get("speed")}}
    if doc.get("static"):
        st = doc["static"]
        out["static"] = {k: st.get(k) for k in ("method", "conv_macs_before", "conv_macs_after", "cut")}
    haste = doc.get("haste") or (doc if "summary" in doc else None)
    if haste:
        out.update(trim_rewrite(haste))
    return out


def trim_rewrite(doc: dict) -> dict:
    """What the page shows of a `rewrite --json` object: the report's summary and the probe's line."""
    s = doc.get("summary", {})
    alloc = doc.get("allocation") or {}
    line = None
    if alloc:
        try:
            from haste_onnx.probe.allocation import Allocation

            line = Allocation.line_from_json(alloc)
        except Exception:  # noqa: BLE001 - an older or newer JSON: the line is only for reading
            line = None
    return {"summary": {k: s.get(k) for k in ("replaced", "layers", "kept", "conv_macs", "haste_macs",
                                               "haste_mac_fraction")},
            "probe": {k: alloc.get(k) for k in ("probe", "rule", "objective", "estimated_cut", "fidelity", "inputs",
                                                "timing", "time_saved_ms", "dense_ms") if k in alloc},
            "probe_line": line}


# ---- fidelity --------------------------------------------------------------------------------------------------

def run_model(path: str, x, batch: int = 8, threads: int = 2):
    """Every output of the model at `path` over `x` (first input), in batches; op library registered."""
    import numpy as np

    from haste_onnx.runtime import inference_session

    sess = inference_session(str(path), threads=threads)
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: np.ascontiguousarray(x[i:i + batch])}) for i in range(0, len(x), batch)]
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def classifier_fidelity(ref, out, labels=None) -> dict:
    import numpy as np

    ref, out = np.asarray(ref).reshape(len(ref), -1), np.asarray(out).reshape(len(out), -1)
    err = np.linalg.norm(out - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-30)
    doc = {"images": int(len(ref)), "top1_agreement": float(np.mean(ref.argmax(1) == out.argmax(1))),
           "relative_error_mean": float(err.mean()), "relative_error_max": float(err.max())}
    if labels is not None:
        n = len(labels)
        doc["accuracy_original"] = float(np.mean(ref[:n].argmax(1) == labels))
        doc["accuracy"] = float(np.mean(out[:n].argmax(1) == labels))
        doc["labelled_images"] = int(n)
    return doc


def detection_fidelity(ref, out) -> dict:
    try:
        from haste_onnx.measure.compare import compare_outputs
    except ImportError as err:
        raise SuiteError("fidelity", f"detections need haste_onnx.measure.compare ({err})") from err
    doc = compare_outputs([ref], [out], kinds=["detection"])
    row = doc["outputs"][0]
    return {"images": doc["images"], "detections_original": row.get("reference_detections"),
            "detections": row.get("detections"), "detections_kept": row.get("detections_kept"),
            "images_unchanged": row.get("detection_images_unchanged"),
            "relative_error_mean": row["relative_error"]["mean"], "relative_error_max": row["relative_error"]["max"],
            "conf": doc["conf"], "match_iou": doc["match_iou"], "nms_iou": doc["nms_iou"]}


def ocr_fidelity(ref, out, texts, characters) -> dict:
    import numpy as np

    a, b = prep.ctc_decode(ref, characters), prep.ctc_decode(out, characters)
    err = np.linalg.norm((out - ref).reshape(len(ref), -1), axis=1) / np.linalg.norm(ref.reshape(len(ref), -1), axis=1)
    return {"images": len(texts), "exact_original": float(np.mean([p == t for p, t in zip(a, texts)])),
            "exact": float(np.mean([p == t for p, t in zip(b, texts)])),
            "same_text": float(np.mean([p == q for p, q in zip(a, b)])),
            "relative_error_mean": float(err.mean()), "relative_error_max": float(err.max())}


def original_metrics(row: dict, data: dict, original: str) -> dict:
    """What the original itself scores on the row's images (accuracy, exact match, detections)."""
    import numpy as np

    if "reference" not in data:
        data["reference"] = run_model(original, data["x"])
    ref = data["reference"][0]
    if row["images"] == "fashion-mnist":
        return {"accuracy": float(np.mean(ref.reshape(len(ref), -1).argmax(1) == data["labels"]))}
    if row["images"] == "ocr":
        texts = prep.ctc_decode(ref, data["characters"])
        return {"exact": float(np.mean([a == b for a, b in zip(texts, data["texts"])]))}
    if row.get("labels") == "foolbox":
        n = len(data["labels"])
        return {"accuracy": float(np.mean(ref[-n:].argmax(1) == np.asarray(data["labels"]))), "labelled_images": n}
    return {}


def fidelity(row: dict, data: dict, original: str, variant: str) -> dict:
    import numpy as np

    if "reference" not in data:
        data["reference"] = run_model(original, data["x"])
    ref = data["reference"]
    out = run_model(variant, data["x"])
    kind = row["images"]
    if kind == "fashion-mnist":
        return classifier_fidelity(ref[0], out[0], data["labels"])
    if kind == "ocr":
        return ocr_fidelity(ref[0], out[0], data["texts"], data["characters"])
    if row["id"].startswith("yolo"):
        return detection_fidelity(ref[0], out[0])
    labels = np.asarray(data["labels"]) if row.get("labels") == "foolbox" else None
    if labels is not None:  # foolbox's images come after the photos
        ref0, out0 = ref[0][-len(labels):], out[0][-len(labels):]
        doc = classifier_fidelity(ref[0], out[0])
        lab = classifier_fidelity(ref0, out0, labels)
        doc.update({k: lab[k] for k in ("accuracy_original", "accuracy", "labelled_images")})
        return doc
    return classifier_fidelity(ref[0], out[0])


# ---- one row ----------------------------------------------------------------------------------------------------

def prepare_data(row: dict, settings: dict, pre: "prep.Preprocess", work: Path) -> dict:
    """The row's evaluation inputs `x` (model format), labels/texts, the bench batch file and the calibration
    folder."""
    import numpy as np

    data: dict = {}
    kind = row["images"]
    calib_dir = work / "calibration"
    n_cal = settings["calibration_images"]
    if kind == "fashion-mnist":
        from PIL import Image

        raw, labels = prep.fashion_mnist("test", row.get("fashion_mnist_limit"))
        data["x"] = prep.fashion_mnist_inputs(raw) if pre.size == (32, 32) else pre.prepare(
            np.stack([pre.fit(Image.fromarray(r)) for r in raw]))
        data["labels"], data["about"] = labels, f"Fashion-MNIST test split, {len(labels)} images"
        train, _ = prep.fashion_mnist("train", n_cal)
        prep.write_folder([(f"train{i}", Image.fromarray(r)) for i, r in enumerate(train)], calib_dir)
        data["calibration_about"] = f"the first {n_cal} Fashion-MNIST training images"
    elif kind == "photos":
        photos = prep.skimage_photos(settings["photos"])
        fool, labels = prep.foolbox_photos()
        data["x"] = pre.prepare_pil([im for _, im in photos + fool])
        data["labels"] = labels
        data["about"] = f"{len(photos)} scikit-image photos + foolbox's {len(fool)} ImageNet images"
        prep.write_folder(prep.random_crops(photos, n_cal), calib_dir)
        data["calibration_about"] = f"{n_cal} random crops of the scikit-image photos (40-80% of the side)"
    elif kind == "ocr":
        import onnx

        lines, texts = prep.ocr_lines(settings["ocr_lines"], settings["ocr_seed"])
        data["x"] = pre.prepare_pil([im for _, im in lines])
        data["texts"] = texts
        data["characters"] = prep.ctc_characters(onnx.load(str(data["model"]), load_external_data=False)) \
            if "model" in data else None
        data["about"] = f"{len(texts)} text lines rendered with DejaVu fonts (labels known by construction)"
        cal, _ = prep.ocr_lines(n_cal, settings["ocr_calibration_seed"])
        prep.write_folder(cal, calib_dir)
        data["calibration_about"] = f"{n_cal} other rendered text lines"
    else:
        raise prep.PrepareError(f"unknown images {kind!r}")
    np.save(work / "batch.npy", data["x"][:8])
    data["calibration_dir"] = calib_dir
    return data


VARIANTS = ("haste", "haste_calibrated", "int8", "plan", "plan_static")
REWRITES = ("haste", "haste_calibrated", "plan", "plan_static")


def measure_row(row: dict, settings: dict, python: str, shared: Optional[str], work: Path,
                log=lambda s: None, variants=VARIANTS) -> dict:
    """Everything the row's docs line needs; failures become `error` (stage and reason), never an exception.
    `variants`: which of VARIANTS to make, time and check (the others are left out of the doc)."""
    doc = {"id": row["id"], "title": row["title"], "row": row, "settings": settings, "stages": {}}
    try:
        _measure(doc, row, settings, python, shared, work, log, variants)
    except SuiteError as err:
        doc["error"] = {"stage": err.stage, "reason": err.reason}
    except prep.PrepareError as err:
        doc["error"] = {"stage": "prepare", "reason": str(err)}
    return doc


def _stage(doc: dict, name: str, start: float) -> None:
    doc["stages"][name] = round(time.time() - start, 1)


def _measure(doc, row, settings, python, shared, work, log, wanted=VARIANTS):
    import onnx

    pre = prep.Preprocess.from_json(row["input"])
    t = time.time()
    model = prep.prepare_model(row["model"], pre, work, shared)
    doc["model"] = {"source": str(prep.source_file(row["model"], shared)), "sha256": prep.sha256(model)}
    data = prepare_data(row, settings, pre, work)
    if row["images"] == "ocr":
        data["characters"] = prep.ctc_characters(onnx.load(str(model), load_external_data=False))
    doc["images"] = {"about": data["about"], "count": int(len(data["x"])), "calibration": data["calibration_about"]}
    _stage(doc, "prepare", t)
    files = {"model": model, "batch": work / "batch.npy", "calibration": data["calibration_dir"]}

    # rewrites
    variants: Dict[str, Optional[Path]] = {}
    for name in REWRITES:
        argv = variant_argv(row, name) if name in wanted else None
        if argv is None:
            continue
        t = time.time()
        out = work / f"{name}.onnx"
        entry = {"argv": argv}
        log(f"  {name}: haste-onnx {' '.join(resolve(argv, {**files, 'out': out}))}")
        try:
            result = run_cli(python, resolve(argv, {**files, "out": out}), f"rewrite ({name})", allow_nothing=True)
        except SuiteError as err:
            entry["error"] = err.reason
            variants[name] = None
        else:
            if result is None:
                entry["nothing_to_do"] = run_cli.last_nothing
                variants[name] = None
            else:
                entry.update(trim_plan(result) if name.startswith("plan") else trim_rewrite(result))
                variants[name] = out
        doc[name] = entry
        _stage(doc, f"rewrite {name}", t)

    # int8
    if "int8" in wanted:
        t = time.time()
        int8 = work / "int8.onnx"
        try:
            cal = prep.synthetic_inputs(pre, settings["int8_calibration_images"])
            doc["int8"] = {"quantization": prep.quantize_int8(model, int8, cal)}
            variants["int8"] = int8
        except Exception as err:  # noqa: BLE001 - the row says why
            doc["int8"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
            variants["int8"] = None
        _stage(doc, "int8", t)

    # bench
    for name, path in variants.items():
        entry = doc[name]
        configs = settings["calibration_configs"] if name == "haste_calibrated" else settings["configs"]
        entry["bench"] = []
        for cfg in configs:
            for batch in row.get("batches", settings["batches"]):
                argv = bench_argv(batch, cfg["threads"], cfg["clock"], settings)
                run = {"batch": batch, "threads": cfg["threads"], "clock": cfg["clock"], "argv": argv}
                if path is None:
                    run["skipped"] = "no model" if "nothing_to_do" not in entry else "nothing to do: 1.00x"
                    entry["bench"].append(run)
                    continue
                t = time.time()
                log(f"  bench {name} B={batch} T={cfg['threads']} ...")
                try:
                    run.update(trim_bench(run_cli(python, resolve(argv, {**files, "variant": path}), "bench")))
                except SuiteError as err:
                    run["error"] = err.reason
                run["seconds"] = round(time.time() - t, 1)
                entry["bench"].append(run)
                log(f"    speed-up {run.get('speedup')}")

    # fidelity
    t = time.time()
    try:
        doc["original"] = original_metrics(row, data, str(model))
    except Exception as err:  # noqa: BLE001
        doc["original"] = {"error": f"{type(err).__name__}: {err}"[:300]}
    _stage(doc, "original", t)
    for name, path in variants.items():
        if path is None:
            continue
        t = time.time()
        try:
            doc[name]["fidelity"] = fidelity(row, data, str(model), str(path))
        except SuiteError as err:
            doc[name]["fidelity"] = {"error": err.reason}
        except Exception as err:  # noqa: BLE001
            doc[name]["fidelity"] = {"error": f"{type(err).__name__}: {err}"[:300]}
        _stage(doc, f"fidelity {name}", t)


# ---- provenance, storing ---------------------------------------------------------------------------------------

def provenance(python: str) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    code = ("import json, sys, onnxruntime, haste_onnx; print(json.dumps([onnxruntime.__version__, "
            "sys.version.split()[0], str(haste_onnx.get_library_path())]))")
    try:
        ort, py, lib = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                                 check=True).stdout)
        lib_sha = prep.sha256(Path(lib))
    except (OSError, subprocess.CalledProcessError, ValueError):
        ort = py = lib_sha = None
    status = git("status", "--porcelain", "--", "haste_onnx", "custom_op", "CMakeLists.txt")
    return {"git_commit": git("rev-parse", "HEAD"), "source_dirty": None if status is None else bool(status),
            "onnxruntime": ort, "python": py, "library_sha256": lib_sha, "cpus": os.cpu_count(),
            "machine": platform.machine()}


def merge_row(results: Path, doc: dict, variants) -> dict:
    """The stored row with `doc`'s `variants` (and their stages, and the original's metrics) put in; each
    variant records the commit it was measured at."""
    path = Path(results) / f"{doc['id']}.json"
    if not path.exists():
        return doc
    merged = json.loads(path.read_text())
    for name in variants:
        if name in doc:
            merged[name] = {**doc[name], "provenance": doc.get("provenance")}
        else:
            merged.pop(name, None)
    for key in ("original", "images", "model"):
        if key in doc:
            merged[key] = doc[key]
    merged.setdefault("stages", {}).update(doc.get("stages", {}))
    if "error" in doc:
        merged["error"] = doc["error"]
    return merged


def write_row(results: Path, doc: dict) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{doc['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return path


# ---- rendering --------------------------------------------------------------------------------------------------

def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _pct(v, digits=1) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def _pct0(v) -> str:
    return _pct(v, 0)


def pair_cell(default: Optional[dict], calibrated: Optional[dict], key: str, fmt) -> str:
    """`default / calibrated` of a MAC figure of the 1T runs ('-' where a rewrite replaced nothing)."""
    values = [fmt(r.get(key)) if r and r.get(key) is not None else "-" for r in (default, calibrated)]
    return " / ".join(values)


def speed_cell(run: Optional[dict]) -> str:
    if run is None:
        return "-"
    if "skipped" in run:
        return "1.00x (none)" if run["skipped"].startswith("nothing") else "-"
    if "error" in run:
        return "error"
    p = run["pair"]
    return f"{_x(run['speedup'])} ({_x(p['p25'])}-{_x(p['p75'])})"


def find_run(entry: Optional[dict], batch: int, threads: int) -> Optional[dict]:
    for run in (entry or {}).get("bench", []):
        if run["batch"] == batch and run["threads"] == threads:
            return run
    return None


def fidelity_cell(f: Optional[dict], entry: Optional[dict] = None, original: Optional[dict] = None) -> str:
    if entry and "nothing_to_do" in entry:
        o = original or {}
        score = (f", exact match {_pct(o['exact'])}" if "exact" in o else
                 f", accuracy {_pct(o['accuracy'], 2)}" if "accuracy" in o else "")
        return f"original kept (nothing to do): identical outputs{score}"
    if not f:
        return "-"
    if "error" in f:
        return f"error: {f['error']}"
    if "exact" in f:
        return (f"exact match {_pct(f['exact_original'])} -> {_pct(f['exact'])}, same text {_pct(f['same_text'])}"
                f" ({f['images']} lines)")
    if "detections_kept" in f:
        return (f"detections kept {_pct(f['detections_kept'])} ({f['detections_original']} -> {f['detections']}), "
                f"images unchanged {_pct(f['images_unchanged'])}")
    text = f"top-1 agreement {_pct(f['top1_agreement'])}, rel. error {f['relative_error_mean']:.3f} (max " \
           f"{f['relative_error_max']:.3f})"
    if "accuracy" in f:
        text += f", accuracy {_pct(f['accuracy_original'], 2)} -> {_pct(f['accuracy'], 2)}"
    return text + f" ({f['images']} images)"


def variant_state(entry: Optional[dict]) -> str:
    if entry is None:
        return "-"
    if "nothing_to_do" in entry:
        return f"nothing to do (exit 5): {entry['nothing_to_do']}"
    if "error" in entry:
        return f"error: {entry['error']}"
    if "int8" in entry and isinstance(entry["int8"], dict) and "used" in entry["int8"]:
        return plan_state(entry)
    s = entry.get("summary") or {}
    q = entry.get("quantization")
    if q:
        return f"int8 QDQ per-channel, {q['calibration_images']} synthetic calibration images"
    return f"{s.get('replaced', '?')} of {s.get('layers', '?')} conv layers replaced"


def plan_state(entry: dict) -> str:
    """One line: what the best plan did (static pass, int8 per layer, HASTE) and its fidelity on the probe."""
    q = entry["int8"]
    parts = []
    st = entry.get("static")
    if st and st.get("conv_macs_before"):
        parts.append(f"{st.get('method')}: conv MACs cut {_pct(1 - st['conv_macs_after'] / st['conv_macs_before'])}")
    if q.get("used"):
        kept = q.get("kept_float") or {}
        why = sorted(set(kept.values()))
        parts.append(f"int8 on {q['quantized']} of {q['layers']} weighted layers"
                     + (f" ({len(kept)} kept float: {'; '.join(why)})" if kept else "")
                     + f", calibrated on {q.get('calibration', '?').split(':')[0]}")
    else:
        parts.append(f"int8 not used: {q.get('reason')}")
    summary = entry.get("summary") or {}
    if summary.get("replaced"):
        parts.append(f"HasteConv on {summary['replaced']} of {summary.get('layers')} conv layers")
    return "; ".join(parts)


def headline(docs: List[dict], settings: dict) -> List[str]:
    """Float32 original, onnxruntime's int8 alone and the best plan side by side (issue 22), 1T runs."""
    lines = ["## float32, int8 alone, best plan", "",
             "Speed-up over the float32 original (1T) and fidelity on the row's real images. **int8 alone**: "
             "onnxruntime's quantize_static on the whole model as above; **best plan**: `haste-onnx rewrite "
             "--int8` with the defaults (int8 per layer where faster here and within the fidelity target on "
             "synthetic probe images, calibrated on synthetic images: data-free; HASTE on layers left float "
             "where it wins); **+ static**: the row's static pass first (in the same rewrite). Commands under "
             "Rows.", "",
             "| model | B | int8 alone | best plan | best plan + static |", "|---|---:|---|---|---|"]
    for d in docs:
        if "error" in d and not d.get("int8"):
            continue
        for b in d["row"].get("batches", settings["batches"]):
            lines.append(f"| {d['id']} | {b} | " + " | ".join(
                speed_cell(find_run(d.get(k), b, 1)) if d.get(k) else "-" for k in ("int8", "plan", "plan_static"))
                + " |")
    lines += ["", "| model | int8 alone | best plan | best plan + static |", "|---|---|---|---|"]
    for d in docs:
        if "error" in d and not d.get("int8"):
            continue
        lines.append(f"| {d['id']} | " + " | ".join(
            fidelity_cell((d.get(k) or {}).get("fidelity"), d.get(k), d.get("original")) if d.get(k) else "-"
            for k in ("int8", "plan", "plan_static")) + " |")
    return lines + [""]


def command_text(argv: List[str]) -> str:
    return "haste-onnx " + " ".join(argv)


def render(docs: List[dict], settings: dict) -> str:
    lines = ["# Real-model suite: HASTE rewrite vs onnxruntime int8", "",
             "Generated by `python benchmarks/suite.py` from benchmarks/suite_results/*.json (rows and settings: "
             "benchmarks/suite.json); do not edit by hand. Issues 16 (item 3) and 17 (item 4).", "",
             "- **speed-up**: original / variant, ratio of the median latencies of alternating runs in one process "
             "(`haste-onnx bench MODEL --against VARIANT`), in brackets the quartiles of the per-pair ratios. "
             f"{settings['warmup']} warm-up + {settings['repeats']} timed runs each. **1T**: one intra-op thread, "
             "process CPU time; **2T**: two threads, wall clock. The machine (2 cores) was shared with other work: "
             "prefer the 1T columns.",
             "- **haste**: `haste-onnx rewrite` with the default options (per layer, measured time within the "
             "fidelity target: top-1 agreement >= 0.99, relative error <= 0.1 on the probe images); "
             "**calibrated**: the same with `--calibration` (32 images); **int8**: "
             "`onnxruntime.quantization.quantize_static`, QDQ, per-channel, uint8 activations and int8 weights, "
             "calibrated on 256 of the project's "
             "synthetic probe images prepared like the model's inputs (no data).",
             "- **r**: the measured cut of all conv MACs on the bench batch, hashing/centring/merging counted "
             "(HasteConv counters); **ideal** = 1/(1 - r); **meas./ideal** = speed-up / ideal; each as "
             "`default / calibrated` rewrite, 1T runs of that batch.",
             "- Commands: `{model}` is the row's model file (its input fixed where the row says), `{out}` the "
             "rewritten file, `{calibration}` the row's calibration folder, `{batch}` the first 8 of the row's images "
             "in the model's input format (.npy), `{variant}` the rewrite or the int8 model; `python "
             "benchmarks/suite.py --only ID --work DIR` makes them and runs the row again.",
             "- \"nothing to do (exit 5)\": the rewrite replaced nothing (no eligible Conv, none faster here, or "
             "none within the fidelity target: the row says which), so the user keeps the original: 1.00x, shown "
             "as `1.00x (none)`.", ""]
    lines += headline(docs, settings)
    lines += ["## Speed", "",
              "| model | B | haste 1T | haste 2T | calibrated 1T | int8 1T | int8 2T | r | ideal | meas./ideal |",
              "|---|---:|---|---|---|---|---|---:|---:|---:|"]
    for d in docs:
        if "error" in d and not d.get("haste"):
            lines.append(f"| {d['id']} | - | not measured: {d['error']['stage']}: {d['error']['reason']} "
                         "| | | | | | | |")
            continue
        for b in d["row"].get("batches", settings["batches"]):
            h1, c1 = find_run(d.get("haste"), b, 1), find_run(d.get("haste_calibrated"), b, 1)
            lines.append(
                f"| {d['id']} | {b} | {speed_cell(h1)} | {speed_cell(find_run(d.get('haste'), b, 2))} | "
                f"{speed_cell(c1)} | {speed_cell(find_run(d.get('int8'), b, 1))} "
                f"| {speed_cell(find_run(d.get('int8'), b, 2))} | "
                + " | ".join(pair_cell(h1, c1, key, fmt) for key, fmt in (("reduction", _pct), ("ideal", _x),
                                                                         ("measured_over_ideal", _pct0))) + " |")
    lines += ["", "## Fidelity on real images", "",
              "| model | images | haste | calibrated | int8 |", "|---|---|---|---|---|"]
    for d in docs:
        if "error" in d and not d.get("haste"):
            continue
        lines.append(f"| {d['id']} | {d.get('images', {}).get('about', '-')} | "
                     + " | ".join(fidelity_cell((d.get(k) or {}).get("fidelity"), d.get(k), d.get("original"))
                                  for k in ("haste", "haste_calibrated", "int8")) + " |")
    lines += ["", "## Rows", ""]
    for d in docs:
        lines.append(f"### {d['id']}: {d['title']}")
        lines.append("")
        if "error" in d:
            lines.append(f"- **not measured** ({d['error']['stage']}): {d['error']['reason']}")
        m = d.get("model")
        if m:
            lines.append(f"- model: `{m['source']}`" + (f" (input fixed: {d['row']['model']})"
                                                         if {'fix_hw', 'input_size'} & set(d['row']['model']) else "")
                         + f", sha256 {m['sha256'][:12]}")
        if d.get("images"):
            lines.append(f"- images: {d['images']['about']}; calibration folder: {d['images']['calibration']}")
        for key, label in (("haste", "default rewrite"), ("haste_calibrated", "calibrated rewrite"),
                           ("int8", "int8"), ("plan", "best plan (`--int8`)"),
                           ("plan_static", "best plan with the static pass")):
            e = d.get(key)
            if not e:
                continue
            lines.append(f"- {label}: {variant_state(e)}")
            if e.get("argv"):
                lines.append(f"  - `{command_text(e['argv'])}`")
            if e.get("probe_line"):
                lines.append("  - probe: " + e["probe_line"].replace("\n", "; "))
            if (e.get("probe") or {}).get("inputs"):
                lines.append(f"  - probe images: {e['probe']['inputs']}")
            if e.get("bench"):
                lines.append(f"  - timed with `{command_text(e['bench'][0]['argv'])}` (and the other B, T)")
        stages = d.get("stages")
        if stages:
            lines.append("- seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
        lines.append("")
    if docs:
        p = docs[0].get("provenance", {})
        commits = sorted({(d.get("provenance") or {}).get("git_commit") or "?" for d in docs})
        lines.append(f"onnxruntime {p.get('onnxruntime')}, Python {p.get('python')}, {p.get('cpus')} CPUs; "
                     f"commit {', '.join(c[:12] for c in commits)}"
                     + (" (with uncommitted changes)" if any((d.get("provenance") or {}).get("source_dirty")
                                                            for d in docs) else "") + ".")
    return "\n".join(lines) + "\n"


def stored(results: Path, suite: dict) -> List[dict]:
    order = {r["id"]: i for i, r in enumerate(suite["rows"])}
    docs = [json.loads(p.read_text()) for p in sorted(Path(results).glob("*.json"))]
    return sorted((d for d in docs if d.get("id") in order), key=lambda d: order[d["id"]])


def log(text: str) -> None:
    print(time.strftime("%H:%M:%S"), text, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", type=Path, default=SUITE, help="the rows (default benchmarks/suite.json)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where to store (default benchmarks/suite_results)")
    p.add_argument("--doc", type=Path, default=DOC, help="the page (default docs/suite.md)")
    p.add_argument("--models-dir", help=f"the shared models folder (default ${prep.MODELS_ENV})")
    p.add_argument("--only", nargs="+", metavar="ID", help="rows whose id matches (fnmatch)")
    p.add_argument("--repeats", type=int, help="timed runs per bench (default: the suite's settings)")
    p.add_argument("--work", type=Path, help="keep the prepared files here (default: a temporary folder)")
    p.add_argument("--python", default=sys.executable, help="the Python whose haste_onnx runs (default this one)")
    p.add_argument("--render-only", action="store_true", help="only render docs/suite.md from the stored rows")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                   help="make and measure only these variants; the row's stored others are kept (default: all)")
    args = p.parse_args(argv)
    suite = load_suite(args.suite)
    settings = dict(suite["settings"])
    if args.repeats:
        settings["repeats"] = args.repeats
    if not args.render_only:
        prov = provenance(args.python)
        for row in select(suite["rows"], args.only):
            start = time.time()
            log(f"{row['id']}: {row['title']}")
            with tempfile.TemporaryDirectory(prefix=f"suite-{row['id']}-") as tmp:
                work = Path(args.work) / row["id"] if args.work else Path(tmp)
                work.mkdir(parents=True, exist_ok=True)
                doc = measure_row(row, settings, args.python, args.models_dir, work, log,
                                  tuple(args.variants or VARIANTS))
            doc["provenance"] = prov
            doc["seconds"] = round(time.time() - start, 1)
            if args.variants:
                doc = merge_row(args.results, doc, args.variants)
            path = write_row(args.results, doc)
            log(f"  wrote {path} ({doc['seconds']:.0f} s)" + (f"; {doc['error']}" if "error" in doc else ""))
    docs = stored(args.results, suite)
    args.doc.write_text(render(docs, settings))
    log(f"wrote {args.doc} from {len(docs)} row(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
