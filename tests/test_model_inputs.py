"""The model's input as the probe and `compare` feed it: layout, size, range and normalisation, inferred from
the graph, the metadata or stated defaults (model_inputs.describe_input); the probe's images in that form."""
import json

import numpy as np
import onnx
import pytest
from PIL import Image

from haste_onnx import cli
from haste_onnx.data.preprocess import FASHION_MNIST_MEAN_STD, IMAGENET_MEAN_STD
from haste_onnx.errors import InputError
from haste_onnx.model_inputs import InputSpec, describe_input, with_input_shape
from haste_onnx.probe import ProbeOptions
from haste_onnx.probe.images import probe_images, synthetic_probe

from conftest import image_folder, net_model, nhwc_model
from models_inline import build, conv_w, plain_model

LAST3 = """
<ir_version: 8, opset_import: ["" : 17]>
last3 (float[1,32,32,3] x) => (float[1,32,32,3] y) {
    y = Relu (x)
}
"""
TWO_INPUTS = """
<ir_version: 8, opset_import: ["" : 17]>
two (float[1,3,8,8] x, float[1,2] scale) => (float[1,16,8,8] y) {
    y = Conv <pads = [1, 1, 1, 1]> (x, w)
}
"""


def with_metadata(model, **props):
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def test_nhwc_from_the_transpose_after_the_input():
    d = describe_input(nhwc_model())
    assert (d.layout, d.shape, d.channels, d.height, d.width) == ("NHWC", (1, 16, 16, 3), 3, 16, 16)
    assert "NHWC from the Transpose to NCHW after the input" in d.reasons
    assert (d.mean, d.std, d.value_range) == (IMAGENET_MEAN_STD[0], IMAGENET_MEAN_STD[1], (0.0, 1.0))
    assert "ImageNet" in d.summary()


def test_nhwc_from_the_last_dimension_and_a_stated_layout_wins():
    model = build(LAST3, {})
    d = describe_input(model)
    assert d.layout == "NHWC" and "NHWC from the last dimension 3" in d.reasons and (d.height, d.width) == (32, 32)
    stated = describe_input(model, InputSpec(layout="NCHW"))
    assert stated.layout == "NCHW" and stated.channels == 32 and "NCHW as stated" in stated.reasons


def test_nchw_and_fashion_mnist_defaults_for_one_channel():
    d = describe_input(net_model(12, 10))
    assert (d.layout, d.shape) == ("NCHW", (1, 1, 12, 10))
    assert (d.mean, d.std) == FASHION_MNIST_MEAN_STD and "NCHW from dimension 1 = 1" in d.reasons


def test_free_dims_get_the_stated_shape_or_a_default():
    free = nhwc_model(h="H", w="W")
    d = describe_input(free)
    assert d.shape == (1, 224, 224, 3) and d.free_dims == (0, 1, 2)
    assert "224x224: free dims, default for 3 channel(s)" in d.reasons
    stated = describe_input(free, InputSpec(shape=(2, 20, 12, 3)))
    assert stated.shape == (2, 20, 12, 3) and "20x12 from the input shape stated" in stated.reasons
    one_side = net_model(12, 12)
    one_side.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    assert describe_input(one_side).shape == (1, 1, 12, 12)
    fixed = with_input_shape(free, (5, 20, 12, 3))
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [20, 12, 3] and dims[0].dim_param == "N"  # the batch stays free
    assert free.graph.input[0].type.tensor_type.shape.dim[1].dim_param == "H"  # a copy


def test_a_stated_shape_must_agree_with_the_fixed_dims():
    with pytest.raises(InputError, match="does not match input input"):
        describe_input(nhwc_model(), InputSpec(shape=(1, 3, 16, 16)))
    with pytest.raises(InputError, match="has 3 dims"):
        describe_input(nhwc_model(), InputSpec(shape=(1, 16, 16)))


def test_range_and_normalisation_from_the_metadata():
    m = with_metadata(nhwc_model(), mean="[0.5, 0.4, 0.3]", std="0.2,0.2,0.2")
    d = describe_input(m)
    assert (d.mean, d.std) == ((0.5, 0.4, 0.3), (0.2, 0.2, 0.2)) and "metadata" in d.reasons[-1]
    yolo = with_metadata(plain_model(dynamic=True), author="Ultralytics", imgsz="[64, 48]")
    d = describe_input(yolo)
    assert d.shape == (1, 3, 64, 48) and (d.value_range, d.mean, d.std) == ((0.0, 1.0), (0.0,), (1.0,))
    assert "64x48: free dims, from the model's metadata (imgsz)" in d.reasons
    raw = with_metadata(nhwc_model(), **{"Image.NominalPixelRange": "NominalRange_0_255"})
    d = describe_input(raw)
    assert d.value_range == (0.0, 255.0) and d.mean == (0.0,) and d.std == (1.0,)
    images = synthetic_probe(raw, 3)
    assert images.max() > 2 and images.min() >= 0 and images.max() <= 255  # raw pixel values


def test_stated_options_win_over_the_metadata():
    m = with_metadata(nhwc_model(), mean="0.5", std="0.5")
    d = describe_input(m, InputSpec(value_range=(0, 255), mean=(100.0,), std=(50.0,)))
    assert (d.value_range, d.mean, d.std) == ((0.0, 255.0), (100.0,), (50.0,))
    d = describe_input(nhwc_model(), InputSpec(value_range=(-1, 1)))
    assert (d.mean, d.std) == ((0.0,), (1.0,))  # a range without mean/std: no normalisation
    x = d.prepare(np.stack([np.full((16, 16, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]))
    assert x.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(x[:, 0, 0, 0], [-1.0, 0.0, 1.0])
    with pytest.raises(InputError, match="the mean has 2 values"):
        describe_input(nhwc_model(), InputSpec(mean=(0.1, 0.2)))


def test_inputs_the_probe_cannot_feed_are_named():
    two = build(TWO_INPUTS, {"w": conv_w(16, 3)})
    with pytest.raises(InputError) as err:
        describe_input(two)
    assert "scale (float32[1,2], not an image)" in str(err.value) and "\n" not in str(err.value)
    flat = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]> f (float[1,80] x) => (float[1,80] y) '
                                   '{ y = Relu (x) }')
    with pytest.raises(InputError, match=r"is float32\[1,80\]; the probe and compare feed images"):
        describe_input(flat)


def test_probe_images_for_an_nhwc_model_are_nhwc():
    images, mean, std, assumed = probe_images(nhwc_model(), ProbeOptions(images=5))
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.float32
    assert (mean, std) == IMAGENET_MEAN_STD
    raw = images * np.asarray(std, np.float32) + np.asarray(mean, np.float32)  # back to [0, 1]
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5 and raw.max() > 0.9
    assert assumed.startswith("data-free (5 synthetic image(s)): input 'input' NHWC 1x16x16x3")
    free, _, _, assumed = probe_images(nhwc_model(h="H", w="W"), ProbeOptions(images=2))
    assert free.shape == (2, 224, 224, 3) and "224x224: free dims, default" in assumed


def test_probe_images_from_a_calibration_folder(tmp_path):
    folder = image_folder(tmp_path / "calib", count=6, size=(20, 24))
    spec = InputSpec(calibration=str(folder))
    images, mean, std, assumed = probe_images(nhwc_model(), ProbeOptions(images=4, inputs=spec))
    assert images.shape == (4, 16, 16, 3)
    assert assumed.startswith(f"data-light (4 calibration image(s) from {folder}, resized to 16x16)")
    first = sorted(p for p in folder.rglob("*.png"))[0]
    expected = np.asarray(Image.open(first).convert("RGB").resize((16, 16), Image.BILINEAR), np.float32) / 255
    np.testing.assert_allclose(images[0], (expected - np.asarray(mean)) / np.asarray(std), rtol=1e-5, atol=1e-5)
    nchw, _, _, _ = probe_images(net_model(12, 12), ProbeOptions(images=10, inputs=spec))
    assert nchw.shape == (6, 1, 12, 12)  # all six, grey, channels first
    with pytest.raises(InputError, match="calibration images: .* does not exist"):
        probe_images(nhwc_model(), ProbeOptions(inputs=InputSpec(calibration=str(tmp_path / "none"))))


def test_rewrite_probes_an_nhwc_model_and_says_what_it_assumed(tmp_path, capsys):
    src = tmp_path / "nhwc.onnx"
    onnx.save(nhwc_model(), str(src))
    code = cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), "--probe-images", "4", "--candidates", "4,8",
                     "--objective", "macs"])
    text, _ = capsys.readouterr()
    assert code == 0
    assert ("probe images: data-free (4 synthetic image(s)): input 'input' NHWC 1x16x16x3, values in [0, 1], "
            "(x - mean) / std") in text
    code = cli.main(["rewrite", str(src), str(tmp_path / "o2.onnx"), "--json", "--probe-images", "4",
                     "--candidates", "4,8", "--objective", "macs", "--range", "0,255", "--save-plan",
                     str(tmp_path / "plan.json")])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0 and "values in [0, 255], no normalisation" in doc["allocation"]["inputs"]
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["origin"]["probe"]["inputs"] == doc["allocation"]["inputs"]


def test_rewrite_with_free_dims_probes_at_the_stated_shape(tmp_path, capsys):
    src = tmp_path / "free.onnx"
    onnx.save(nhwc_model(h="H", w="W"), str(src))
    code = cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), "--json", "--probe-images", "4",
                     "--candidates", "4,8", "--objective", "macs", "--input-shape", "1x12x12x3"])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0 and doc["allocation"]["rule"] == "budget" and "skipped" not in doc["allocation"]
    assert "NHWC 1x12x12x3" in doc["allocation"]["inputs"] and "12x12 from the input shape stated" in \
        doc["allocation"]["inputs"]
    assert all(m["dense_macs"] > 0 for m in doc["allocation"]["measurements"])


def test_rewrite_with_a_calibration_folder_is_data_light(tmp_path, capsys):
    src = tmp_path / "nhwc.onnx"
    onnx.save(nhwc_model(), str(src))
    folder = image_folder(tmp_path / "calib", count=5)
    code = cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), "--calibration", str(folder), "--candidates",
                     "4,8", "--objective", "macs"])
    text, _ = capsys.readouterr()
    assert code == 0 and f"probe images: data-light (5 calibration image(s) from {folder}" in text
    code = cli.main(["rewrite", str(src), str(tmp_path / "o2.onnx"), "--calibration", str(tmp_path / "nowhere")])
    _, err = capsys.readouterr()
    assert code == 3 and "calibration images:" in err and not (tmp_path / "o2.onnx").exists()


@pytest.mark.parametrize("args", [["-L", "8", "--calibration", "."], ["--no-probe", "--calibration", "."],
                                  ["--probe", "synthetic-blocky", "--calibration", "."], ["--input-shape", "1x0x3"],
                                  ["--range", "1,0"], ["--range", "0"], ["--layout", "NCWH"]])
def test_input_option_usage_errors_exit_2(args, tmp_path):
    src = tmp_path / "nhwc.onnx"
    onnx.save(nhwc_model(), str(src))
    code = None
    try:
        code = cli.main(["rewrite", str(src), str(tmp_path / "o.onnx"), *args])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and not (tmp_path / "o.onnx").exists()


def test_every_command_that_probes_takes_the_input_options():
    parser = cli.build_parser()
    for command in ("rewrite", "eval", "bench", "demo"):
        args = parser.parse_args([command, "m.onnx", *(["o.onnx"] if command == "rewrite" else []),
                                  "--input-shape", "1x3x8x8", "--layout", "nchw", "--range", "0,255",
                                  "--calibration", "d", "--mean", "1", "--std", "2"])
        assert (args.input_shape, args.layout, args.value_range, args.calibration, args.mean, args.std) == \
            ((1, 3, 8, 8), "NCHW", (0.0, 255.0), "d", [1.0], [2.0]), command
