"""`haste-onnx compare` and measure/compare.py: agreement, relative error and boxes kept between two models."""
import json

import numpy as np
import onnx
import pytest

from haste_onnx import cli
from haste_onnx.measure.compare import compare_outputs, decode, match_detections, nms, output_kind

from conftest import detect_model, image_folder, net_model, nhwc_model, perturbed


@pytest.mark.parametrize("shape, kind", [((4, 10), "classifier"), ((4, 1000, 1, 1), "classifier"),
                                         ((1, 84, 8400), "detection"), ((2, 25200, 85), "detection-boxes"),
                                         ((1, 16, 8, 8), "other"), ((4, 1), "other"), ((3,), "other")])
def test_output_kind(shape, kind):
    assert output_kind(shape) == kind


def test_identical_outputs_agree_fully_and_perturbed_ones_less():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 10)).astype(np.float32)
    other = rng.normal(size=(50, 3, 4)).astype(np.float32)
    same = compare_outputs([logits, other], [logits.copy(), other.copy()])
    assert same["top1_agreement"] == 1.0 and same["top5_agreement"] == 1.0
    assert same["relative_error"] == [0.0, 0.0] and same["detections_kept"] is None
    assert [o["kind"] for o in same["outputs"]] == ["classifier", "other"]
    noisy = logits + rng.normal(scale=0.8, size=logits.shape).astype(np.float32)
    diff = compare_outputs([logits, other], [noisy, other * 1.1])
    assert 0 < diff["top1_agreement"] < 1 and diff["top5_agreement"] >= diff["top1_agreement"]
    assert diff["relative_error"][0] > 0 and diff["relative_error"][1] == pytest.approx(0.1, rel=1e-5)
    assert diff["outputs"][1]["relative_error"]["mean"] == pytest.approx(0.1, rel=1e-5)


def yolo(boxes, classes=3, anchors=8):
    """A YOLOv8-like output [1, 4 + classes, anchors] holding `boxes`: (cx, cy, w, h, class, score)."""
    out = np.zeros((1, 4 + classes, anchors), np.float32)
    for a, (cx, cy, w, h, c, s) in enumerate(boxes):
        out[0, :4, a] = (cx, cy, w, h)
        out[0, 4 + c, a] = s
    return out


def test_nms_keeps_one_of_overlapping_boxes_of_a_class():
    found = decode(yolo([(10, 10, 4, 4, 0, 0.9), (10.2, 10, 4, 4, 0, 0.8), (10, 10, 4, 4, 1, 0.7),
                         (30, 30, 4, 4, 0, 0.6), (50, 50, 4, 4, 2, 0.1)]), "detection", conf=0.25)[0]
    assert len(found["scores"]) == 4  # the last is below the confidence
    kept = nms(found)
    assert sorted(kept["scores"].tolist()) == pytest.approx([0.6, 0.7, 0.9])


def test_boxes_are_kept_only_at_the_same_class_and_a_high_iou():
    ref = nms(decode(yolo([(10, 10, 4, 4, 0, 0.9), (30, 30, 4, 4, 1, 0.8)]), "detection")[0])
    assert match_detections(ref, ref) == 2
    moved = nms(decode(yolo([(10.5, 10, 4, 4, 0, 0.9), (30, 30, 4, 4, 2, 0.8)]), "detection")[0])
    assert match_detections(ref, moved) == 0  # IoU 0.78 < 0.9, and another class
    nudged = nms(decode(yolo([(10.05, 10, 4, 4, 0, 0.5), (30, 30, 4, 4, 1, 0.8)]), "detection")[0])
    assert match_detections(ref, nudged) == 2


def test_detection_outputs_report_the_boxes_kept():
    ref = np.concatenate([yolo([(10, 10, 4, 4, 0, 0.9), (30, 30, 4, 4, 1, 0.8)]),
                          yolo([(20, 20, 6, 6, 2, 0.9)])])
    same = compare_outputs([ref], [ref.copy()])
    assert same["outputs"][0]["kind"] == "detection"
    assert same["detections_kept"] == 1.0 and same["detection_images_unchanged"] == 1.0
    assert same["top1_agreement"] is None
    changed = ref.copy()
    changed[0, 0, 1] += 2  # image 0's second box moves
    diff = compare_outputs([ref], [changed])
    assert diff["detections_kept"] == pytest.approx(2 / 3) and diff["detection_images_unchanged"] == 0.5
    assert diff["outputs"][0]["reference_detections"] == 3 and diff["outputs"][0]["kept"] == 2
    boxes_major = compare_outputs([np.concatenate([ref.transpose(0, 2, 1)[..., :4], np.ones((2, 8, 1), np.float32),
                                                   ref.transpose(0, 2, 1)[..., 4:]], axis=2)] * 2,
                                  [np.concatenate([changed.transpose(0, 2, 1)[..., :4], np.ones((2, 8, 1), np.float32),
                                                   changed.transpose(0, 2, 1)[..., 4:]], axis=2)] * 2,
                                  kinds=["detection-boxes"] * 2)
    assert boxes_major["detections_kept"] == pytest.approx(2 / 3)


def run_compare(capsys, *args):
    code = cli.main(["compare", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_compare_command_on_identical_and_perturbed_classifiers(tmp_path, capsys):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(nhwc_model(), str(a))
    onnx.save(nhwc_model(seed=1), str(b))  # other weights
    same = run_compare(capsys, a, a, "--count", "12")
    assert same["images"] == 12 and same["top1_agreement"] == 1.0 and same["relative_error"] == [0.0]
    assert same["inputs"]["layout"] == "NHWC" and "synthetic" in same["inputs"]["source"]
    diff = run_compare(capsys, a, b, "--count", "32")
    assert diff["top1_agreement"] < 1.0 and diff["relative_error"][0] > 0.01


def test_compare_on_a_folder_of_images_with_free_dims(tmp_path, capsys):
    a = tmp_path / "free.onnx"
    onnx.save(nhwc_model(h="H", w="W"), str(a))
    folder = image_folder(tmp_path / "photos", count=5, size=(30, 20))
    doc = run_compare(capsys, a, a, "--images", folder, "--input-shape", "1x24x24x3", "--range", "0,255")
    assert doc["images"] == 5 and doc["inputs"]["shape"] == [1, 24, 24, 3]
    assert doc["inputs"]["value_range"] == [0.0, 255.0] and doc["top1_agreement"] == 1.0
    assert "5 image(s) from" in doc["inputs"]["source"]


def test_compare_command_on_detection_models(tmp_path, capsys):
    a, b = tmp_path / "d.onnx", tmp_path / "p.onnx"
    onnx.save(detect_model(), str(a))
    onnx.save(perturbed(detect_model(), "w1", 1.0), str(b))
    same = run_compare(capsys, a, a, "--count", "4", "--conf", "0.6")
    out = same["outputs"][0]
    assert out["kind"] == "detection" and out["reference_detections"] > 0
    assert same["detections_kept"] == 1.0 and same["detection_images_unchanged"] == 1.0
    diff = run_compare(capsys, a, b, "--count", "4", "--conf", "0.6")
    assert diff["detections_kept"] < 1.0 and diff["relative_error"][0] > 0
    code = cli.main(["compare", str(a), str(b), "--count", "2"])
    text = capsys.readouterr()[0]
    assert code == 0 and "detections kept" in text and "output0" in text


def test_compare_a_rewritten_model(tmp_path, capsys):
    src, out = tmp_path / "net.onnx", tmp_path / "out.onnx"
    onnx.save(net_model(16, 16), str(src))
    assert cli.main(["rewrite", str(src), str(out), "-L", "2"]) == 0
    capsys.readouterr()
    doc = run_compare(capsys, src, out, "--count", "16")
    assert doc["relative_error"][0] > 0 and doc["top1_agreement"] is not None
    assert doc["outputs"][0]["name"] == "logits" and doc["outputs"][0]["shape"] == [16, 10]


def test_compare_refuses_models_it_cannot_feed(tmp_path, capsys):
    a = tmp_path / "a.onnx"
    onnx.save(nhwc_model(), str(a))
    code = cli.main(["compare", str(a), str(tmp_path / "missing.onnx")])
    assert code == 3 and "missing.onnx" in capsys.readouterr()[1]
    code = cli.main(["compare", str(a), str(a), "--input-shape", "1x3x16x16"])
    err = capsys.readouterr()[1]
    assert code == 3 and err.count("\n") == 1 and "does not match input input" in err
