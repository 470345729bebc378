"""How far a rewritten model's outputs are from the original's, on the same inputs (`haste-onnx compare`, and
the rewrite's final fidelity check).

Per output, by its kind (`output_kind`, from the shape):
- every output: the relative error per image, ||y - y_ref|| / ||y_ref|| over that image's values (max and
  mean over the images);
- "classifier" ([N, K], or [N, K, 1, 1]): top-1 agreement (the same arg-max) and top-5 agreement (the
  original's top-1 class among the rewritten model's top 5; None when K <= 5);
- "detection" (YOLOv8-like [N, 4 + C, A]: box cx, cy, w, h then C class scores per anchor) and
  "detection-boxes" ([N, A, 4 + 1 + C]: box, objectness, C class scores, YOLOv5-like; [N, A, 5]: box and one
  score): the boxes above `conf` after a class-wise NMS (`nms`, numpy), matched greedily (the original's
  boxes by confidence, each to the unmatched rewritten box of the same class with the largest IoU, kept when
  that IoU >= `match_iou`); `detections_kept` is the share of the original's boxes kept and
  `detection_images_unchanged` the share of images whose boxes are all kept with none added.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

OUTPUT_KINDS = ("classifier", "detection", "detection-boxes", "other")
DEFAULT_CONF = 0.25  # detections: the least confidence of a box
DEFAULT_MATCH_IOU = 0.9  # a rewritten box keeps an original one at this IoU or more (same class)
DEFAULT_NMS_IOU = 0.45  # NMS: a box is dropped at this IoU or more with a more confident one of its class
MAX_DETECTIONS = 300  # per image, after NMS


def output_kind(shape: Sequence[Optional[int]]) -> str:
    """"classifier" for [N, K] (K >= 2) or [N, K, 1, ...]; "detection" for [N, 4 + C, A] with 5 <= 4 + C < A
    (YOLOv8's layout); "detection-boxes" for [N, A, K] with 5 <= K < A; else "other"."""
    dims = list(shape)
    if any(d is None for d in dims[1:]):
        return "other"
    if len(dims) >= 2 and dims[1] >= 2 and all(d == 1 for d in dims[2:]):
        return "classifier"
    if len(dims) == 3:
        if 5 <= dims[1] < dims[2]:
            return "detection"
        if 5 <= dims[2] < dims[1]:
            return "detection-boxes"
    return "other"


def relative_errors(reference: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Per image (axis 0): ||output - reference|| / ||reference|| (the absolute error where the reference is 0)."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1) if np.ndim(reference) else \
        np.asarray(reference, np.float64).reshape(1, 1)
    out = np.asarray(output, np.float64).reshape(ref.shape)
    norm = np.linalg.norm(ref, axis=1)
    diff = np.linalg.norm(out - ref, axis=1)
    return np.where(norm > 0, diff / np.where(norm > 0, norm, 1.0), diff)


def classifier_agreement(reference: np.ndarray, output: np.ndarray) -> Dict[str, Optional[float]]:
    ref = np.asarray(reference).reshape(len(reference), -1)
    out = np.asarray(output).reshape(len(output), -1)
    top1_ref = ref.argmax(axis=1)
    top1 = float(np.mean(out.argmax(axis=1) == top1_ref))
    top5 = None
    if ref.shape[1] > 5:
        best5 = np.argsort(-out, axis=1, kind="stable")[:, :5]
        top5 = float(np.mean((best5 == top1_ref[:, None]).any(axis=1)))
    return {"top1_agreement": top1, "top5_agreement": top5}


# ---- detections ---------------------------------------------------------------------------------

def decode(output: np.ndarray, kind: str, conf: float = DEFAULT_CONF) -> List[Dict[str, np.ndarray]]:
    """Per image: {"boxes": [M, 4] x1, y1, x2, y2, "scores": [M], "classes": [M]} of the boxes above `conf`."""
    x = np.asarray(output, np.float32)
    if kind == "detection":
        x = x.transpose(0, 2, 1)  # [N, A, 4 + C]
    images = []
    for rows in x:
        if kind == "detection-boxes" and rows.shape[1] >= 6:
            class_scores = rows[:, 5:] * rows[:, 4:5]  # objectness times the class scores
        else:
            class_scores = rows[:, 4:]
        classes = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(rows)), classes]
        keep = scores >= conf
        cx, cy, w, h = (rows[keep, i] for i in range(4))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        images.append({"boxes": boxes, "scores": scores[keep], "classes": classes[keep]})
    return images


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] (x1, y1, x2, y2) with each of `boxes` [M, 4]."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(found: Dict[str, np.ndarray], iou_threshold: float = DEFAULT_NMS_IOU,
        max_detections: int = MAX_DETECTIONS) -> Dict[str, np.ndarray]:
    """Greedy class-wise non-maximum suppression: by falling score, a box is kept unless a kept box of its class
    overlaps it with IoU >= `iou_threshold`; at most `max_detections` boxes."""
    order = np.argsort(-found["scores"], kind="stable")
    kept: List[int] = []
    for i in order:
        same = [k for k in kept if found["classes"][k] == found["classes"][i]]
        if same and iou(found["boxes"][i], found["boxes"][same]).max() >= iou_threshold:
            continue
        kept.append(int(i))
        if len(kept) == max_detections:
            break
    idx = np.asarray(kept, np.int64)
    return {k: v[idx] for k, v in found.items()}


def match_detections(reference: Dict[str, np.ndarray], found: Dict[str, np.ndarray],
                     match_iou: float = DEFAULT_MATCH_IOU) -> int:
    """How many of the reference's boxes (by falling score) find an unmatched box of the same class with
    IoU >= `match_iou` (the largest such IoU wins)."""
    free = np.ones(len(found["scores"]), bool)
    matched = 0
    for i in np.argsort(-reference["scores"], kind="stable"):
        candidates = np.flatnonzero(free & (found["classes"] == reference["classes"][i]))
        if not len(candidates):
            continue
        overlaps = iou(reference["boxes"][i], found["boxes"][candidates])
        best = int(np.argmax(overlaps))
        if overlaps[best] >= match_iou:
            free[candidates[best]] = False
            matched += 1
    return matched


def detection_agreement(reference: np.ndarray, output: np.ndarray, kind: str, conf: float = DEFAULT_CONF,
                        match_iou: float = DEFAULT_MATCH_IOU, nms_iou: float = DEFAULT_NMS_IOU) -> dict:
    refs = [nms(d, nms_iou) for d in decode(reference, kind, conf)]
    outs = [nms(d, nms_iou) for d in decode(output, kind, conf)]
    kept = [match_detections(r, o, match_iou) for r, o in zip(refs, outs)]
    total = sum(len(r["scores"]) for r in refs)
    unchanged = [k == len(r["scores"]) == len(o["scores"]) for k, r, o in zip(kept, refs, outs)]
    return {"reference_detections": int(total), "detections": int(sum(len(o["scores"]) for o in outs)),
            "kept": int(sum(kept)), "detections_kept": (sum(kept) / total) if total else None,
            "detection_images_unchanged": float(np.mean(unchanged)) if unchanged else None}


# ---- all outputs ---------------------------------------------------------------------------------

def compare_outputs(reference_outputs: List[np.ndarray], outputs: List[np.ndarray],
                    kinds: Optional[Sequence[str]] = None, names: Optional[Sequence[str]] = None, conf: float = DEFAULT_CONF,
                    match_iou: float = DEFAULT_MATCH_IOU, nms_iou: float = DEFAULT_NMS_IOU) -> dict:
    """The fidelity of `outputs` to `reference_outputs` (one array per model output, images along axis 0):
    per output its kind, relative error (max and mean over images) and the agreement its kind has; and over
    the outputs: `top1_agreement`/`top5_agreement` (the least over classifier outputs; None without one),
    `relative_error` (per output, the max over images), `detections_kept` and `detection_images_unchanged`
    (the least over detection outputs; None without one). `kinds` None: `output_kind` of each shape."""
    if len(reference_outputs) != len(outputs):
        raise ValueError(f"{len(reference_outputs)} reference outputs but {len(outputs)} outputs")
    kinds = list(kinds) if kinds is not None else [output_kind(np.shape(r)) for r in reference_outputs]
    names = list(names) if names is not None else [f"output {i}" for i in range(len(outputs))]
    rows = []
    for name, kind, ref, out in zip(names, kinds, reference_outputs, outputs):
        if kind not in OUTPUT_KINDS:
            raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(OUTPUT_KINDS)}")
        if np.shape(ref) != np.shape(out):
            raise ValueError(f"{name}: shapes differ, {np.shape(ref)} and {np.shape(out)}")
        errors = relative_errors(ref, out)
        row = {"name": name, "shape": list(np.shape(ref)), "kind": kind,
               "relative_error": {"max": float(errors.max()), "mean": float(errors.mean())}}
        if kind == "classifier":
            row.update(classifier_agreement(ref, out))
        elif kind in ("detection", "detection-boxes"):
            row.update(detection_agreement(ref, out, kind, conf, match_iou, nms_iou))
        rows.append(row)

    def least(key):
        values = [r[key] for r in rows if r.get(key) is not None]
        return min(values) if values else None

    return {"images": int(len(reference_outputs[0])) if reference_outputs and np.ndim(reference_outputs[0]) else None,
            "outputs": rows, "top1_agreement": least("top1_agreement"), "top5_agreement": least("top5_agreement"),
            "relative_error": [r["relative_error"]["max"] for r in rows],
            "detections_kept": least("detections_kept"),
            "detection_images_unchanged": least("detection_images_unchanged"),
            "conf": conf, "match_iou": match_iou, "nms_iou": nms_iou}


def run_outputs(session, images: np.ndarray, batch: Optional[int] = None) -> List[np.ndarray]:
    """Every output of an onnxruntime session on `images` (its first input), in batches, concatenated."""
    name = session.get_inputs()[0].name
    batch = batch or len(images)
    runs = [session.run(None, {name: np.ascontiguousarray(images[i:i + batch])}) for i in range(0, len(images), batch)]
    return [np.concatenate([np.asarray(r[k]) for r in runs]) if np.ndim(runs[0][k]) else np.asarray(runs[0][k])
            for k in range(len(runs[0]))]


def compare_models(original, rewritten, images: np.ndarray, threads: Optional[int] = 2, batch: Optional[int] = None,
                   **options) -> dict:
    """`compare_outputs` of two models (ModelProto, path or bytes; run with the op library) on `images`,
    prepared for their input (`model_inputs.InputDescription.prepare`); `batch` images per run."""
    from ..runtime import inference_session

    sessions = [inference_session(m, threads=threads) for m in (original, rewritten)]
    names = [o.name for o in sessions[0].get_outputs()]
    if names != [o.name for o in sessions[1].get_outputs()]:
        raise ValueError(f"the models' outputs differ: {names} and {[o.name for o in sessions[1].get_outputs()]}")
    reference = run_outputs(sessions[0], images, batch)
    outputs = run_outputs(sessions[1], images, batch)
    return compare_outputs(reference, outputs, names=names, **options)
