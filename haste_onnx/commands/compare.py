"""`haste-onnx compare ORIGINAL REWRITTEN`: how far the rewritten model's outputs are from the original's.

Both models run on the same inputs: the images of a folder (`--images DIR`,
resized to the input size) or synthetic images (smooth noise, as the probe's
but another draw), prepared as the model takes them (`model_inputs.describe_input`
with the input format options). The report, per output: relative error (max
and mean over the images), top-1/top-5 agreement for classifier outputs, and
the boxes kept for detection outputs (`haste_onnx.measure.compare`).
"""
from __future__ import annotations

import json
import sys

from .args import add_inputs, add_output_format, add_runtime, ranged
from .tables import format_table

HELP = "compare the outputs of a model and its rewrite on the same images (agreement, error, boxes kept)"
DEFAULT_SYNTHETIC = 16
COMPARE_SEED = 1  # the probe draws seed 0: compare on other images


def configure(parser) -> None:
    from ..measure.compare import DEFAULT_CONF, DEFAULT_MATCH_IOU, DEFAULT_NMS_IOU
    from .args import MODEL_HELP

    group = parser.add_argument_group("models")
    group.add_argument("original", metavar="ORIGINAL", help=MODEL_HELP)
    group.add_argument("rewritten", metavar="REWRITTEN", help="the rewritten model (ONNX file)")
    images = parser.add_argument_group("images")
    images.add_argument("--images", metavar="DIR", default=None,
                        help="run on the images in DIR (any depth, unlabelled; resized to the input size); "
                             f"default: {DEFAULT_SYNTHETIC} synthetic images (smooth noise)")
    images.add_argument("--count", type=ranged(int, 1, None, "--count"), default=None, metavar="N",
                        help=f"images: the first N of DIR (default all), or N synthetic ones (default "
                             f"{DEFAULT_SYNTHETIC})")
    images.add_argument("--seed", type=ranged(int, 0, 2**32 - 1, "--seed"), default=COMPARE_SEED, metavar="N",
                        help=f"seed of the synthetic images (default {COMPARE_SEED}; the probe's are seed 0)")
    det = parser.add_argument_group("detections")
    det.add_argument("--conf", type=ranged(float, 0.0, 1.0, "--conf"), default=DEFAULT_CONF, metavar="C",
                     help=f"least confidence of a box (default {DEFAULT_CONF})")
    det.add_argument("--iou", type=ranged(float, 0.0, 1.0, "--iou"), default=DEFAULT_MATCH_IOU, metavar="I",
                     help=f"a rewritten box keeps an original one of the same class at this IoU or more "
                          f"(default {DEFAULT_MATCH_IOU})")
    det.add_argument("--nms-iou", type=ranged(float, 0.0, 1.0, "--nms-iou"), default=DEFAULT_NMS_IOU, metavar="I",
                     help=f"non-maximum suppression per class at this IoU (default {DEFAULT_NMS_IOU})")
    add_inputs(parser, calibration=False)
    add_runtime(parser, batch=8)
    add_output_format(parser)


def run(args) -> int:
    from ..errors import InputError
    from ..measure.compare import compare_models
    from ..model_inputs import describe_input
    from ..model_io import load_model
    from ..zoo import resolve_model
    from .args import input_spec

    path, entry = resolve_model(args.original)
    original = load_model(path)
    rewritten = load_model(args.rewritten)
    spec = input_spec(args)
    description = describe_input(original.model, spec, *((entry.mean, entry.std) if entry else (None, None)),
                                 mean_std_origin=f"the model name {entry.name}" if entry else "")
    size = (description.height, description.width)
    if args.images:
        from ..data.folders import load_unlabelled_images

        try:
            raw, files = load_unlabelled_images(args.images, size, description.channels, limit=args.count)
        except (FileNotFoundError, ValueError, ImportError, OSError) as err:
            raise InputError(f"--images: {str(err).splitlines()[0]}") from err
        images = description.prepare(raw)
        source = f"{len(files)} image(s) from {args.images}, resized to {size[0]}x{size[1]}"
    else:
        from ..probe.images import synthetic_images

        images = synthetic_images(description, args.count or DEFAULT_SYNTHETIC, seed=args.seed)
        source = f"{len(images)} synthetic image(s) (smooth noise, seed {args.seed})"
    batch = description.fixed_batch or args.batch
    if len(images) % batch and description.fixed_batch:
        images = images[:len(images) - len(images) % batch]
        if not len(images):
            raise InputError(f"the model takes batches of {batch}; give at least {batch} images")
    try:
        result = compare_models(original.model, rewritten.model, images, threads=args.threads, batch=batch,
                                conf=args.conf, match_iou=args.iou, nms_iou=args.nms_iou)
    except ValueError as err:
        raise InputError(str(err).splitlines()[0]) from err
    doc = {"command": "compare", "original": str(original.path), "rewritten": str(rewritten.path),
           "inputs": {"source": source, "summary": description.summary(), **description.to_json()}, **result}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_result(doc))
    sys.stdout.flush()
    return 0


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def format_result(doc: dict) -> str:
    rows = []
    for o in doc["outputs"]:
        boxes = ""
        if "kept" in o:
            boxes = (f"{o['kept']}/{o['reference_detections']} kept ({o['detections']} found), "
                     f"{_pct(o['detection_images_unchanged'])} of images unchanged")
        rows.append((o["name"], "x".join(map(str, o["shape"])), o["kind"], f"{o['relative_error']['max']:.4g}",
                     f"{o['relative_error']['mean']:.4g}", _pct(o.get("top1_agreement")),
                     _pct(o.get("top5_agreement")), boxes))
    table = format_table(["output", "shape", "kind", "rel. error max", "mean", "top-1", "top-5",
                          f"boxes (conf >= {doc['conf']:g}, IoU >= {doc['match_iou']:g})"], rows, right=(3, 4, 5, 6))
    lines = [f"compare {doc['original']} -> {doc['rewritten']} on {doc['inputs']['source']}",
             f"inputs: {doc['inputs']['summary']}", table]
    if doc["top1_agreement"] is not None:
        lines.append(f"top-1 agreement {_pct(doc['top1_agreement'])}")
    if doc["detections_kept"] is not None:
        lines.append(f"detections kept {_pct(doc['detections_kept'])}, images unchanged "
                     f"{_pct(doc['detection_images_unchanged'])}")
    return "\n".join(lines)
