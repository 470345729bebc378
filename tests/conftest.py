from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import haste_onnx
from haste_onnx import data as hd
from models_inline import build, conv_w


def pytest_addoption(parser):
    parser.addoption("--fuzz-cases", type=int, default=None,
                     help="number of randomized kernel-vs-reference cases (default: 200, or 2000 with -m slow)")


@pytest.fixture
def run_haste():
    """Runs a model with the op library in onnxruntime; returns the first output."""

    def run(model, feeds, threads=1):
        opts = haste_onnx.session_options(threads=threads)
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0]

    return run


@pytest.fixture
def run_plain():
    def run(model, feeds):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0]

    return run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---- shared helpers: a small classifier and a fake Fashion-MNIST (imported as `from conftest import ...`)

NET = """
<ir_version: 8, opset_import: ["" : 17]>
net (float[N,1,{h},{w}] input) => (float[N,10] logits) {{
    a = Conv <pads = [1, 1, 1, 1]> (input, w0, b0)
    a_t = Tanh (a)
    c1 = Conv <pads = [1, 1, 1, 1]> (a_t, w1, b1)
    c1_t = Tanh (c1)
    c2 = Conv <pads = [1, 1, 1, 1]> (c1_t, w2, b2)
    c2_t = Tanh (c2)
    pw = Conv (c2_t, w3)
    p = GlobalAveragePool (pw)
    f = Flatten (p)
    logits = Gemm <transB = 1> (f, wf, bf)
}}
"""
NET_SHAPES = {"w0": conv_w(16, 1), "b0": [16], "w1": conv_w(16, 16), "b1": [16], "w2": conv_w(24, 16), "b2": [24],
              "w3": conv_w(24, 24, 1), "wf": [10, 24], "bf": [10]}


def net_model(h: int = 12, w: int = 12, seed: int = 0) -> onnx.ModelProto:
    model = build(NET.format(h=h, w=w), NET_SHAPES, seed=seed)
    for node in model.graph.node:
        node.name = node.output[0]
    return model


def net_file(tmp_path: Path, h: int = 12, w: int = 12, name: str = "net.onnx") -> Path:
    path = tmp_path / name
    onnx.save(net_model(h, w), str(path))
    return path


def fake_fashion_mnist(directory: Path, n_test: int = 40, n_train: int = 8, seed: int = 0) -> Path:
    """Random 28x28 uint8 images with random labels, in Fashion-MNIST's IDX layout (.gz)."""
    rng = np.random.default_rng(seed)
    for split, n in (("test", n_test), ("train", n_train)):
        stem = "t10k" if split == "test" else "train"
        hd.write_idx(directory / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        hd.write_idx(directory / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    return directory


# ---- model inputs and compare: an NHWC classifier, a detection-style model, a folder of images

NHWC_NET = """
<ir_version: 8, opset_import: ["" : 17]>
nhwc (float[{n},{h},{w},3] input) => (float[{n},10] logits) {{
    x = Transpose <perm = [0, 3, 1, 2]> (input)
    a = Conv <pads = [1, 1, 1, 1]> (x, w0, b0)
    a_t = Tanh (a)
    c1 = Conv <pads = [1, 1, 1, 1]> (a_t, w1, b1)
    c1_t = Tanh (c1)
    c2 = Conv <pads = [1, 1, 1, 1]> (c1_t, w2, b2)
    c2_t = Tanh (c2)
    p = GlobalAveragePool (c2_t)
    f = Flatten (p)
    logits = Gemm <transB = 1> (f, wf, bf)
}}
"""
NHWC_SHAPES = {"w0": conv_w(16, 3), "b0": [16], "w1": conv_w(16, 16), "b1": [16], "w2": conv_w(24, 16), "b2": [24],
               "wf": [10, 24], "bf": [10]}


def nhwc_model(h="16", w="16", n="N", seed: int = 0) -> onnx.ModelProto:
    """A small classifier whose input is NHWC [n, h, w, 3] (then a Transpose to NCHW); h/w may be symbolic."""
    model = build(NHWC_NET.format(n=n, h=h, w=w), NHWC_SHAPES, seed=seed)
    for node in model.graph.node:
        node.name = node.output[0]
    return model


# YOLOv8-like: per anchor (8x8 of them) a box (cx, cy, w, h in pixels) and 3 class scores: [N, 7, 64]
DETECT_NET = """
<ir_version: 8, opset_import: ["" : 17]>
detect (float[N,3,16,16] images) => (float[N,7,64] output0) {
    a = Conv <pads = [1, 1, 1, 1], strides = [2, 2]> (images, w0, b0)
    a_t = Tanh (a)
    c1 = Conv <pads = [1, 1, 1, 1]> (a_t, w1, b1)
    c1_t = Tanh (c1)
    h = Conv (c1_t, wh, bh)
    s = Sigmoid (h)
    shape = Constant <value = int64[3] {0, 7, 64}> ()
    r = Reshape (s, shape)
    scale = Constant <value = float[1,7,1] {16, 16, 8, 8, 1, 1, 1}> ()
    output0 = Mul (r, scale)
}
"""
DETECT_SHAPES = {"w0": conv_w(16, 3), "b0": [16], "w1": conv_w(16, 16), "b1": [16], "wh": conv_w(7, 16, 1),
                 "bh": [7]}


def detect_model(seed: int = 0) -> onnx.ModelProto:
    model = build(DETECT_NET, DETECT_SHAPES, seed=seed)
    for node in model.graph.node:
        node.name = node.output[0]
    return model


def perturbed(model: onnx.ModelProto, name: str, scale: float = 0.5, seed: int = 7) -> onnx.ModelProto:
    """A copy of `model` with noise of `scale` times the weights' std added to initializer `name`."""
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    init = next(i for i in copy.graph.initializer if i.name == name)
    w = numpy_helper.to_array(init)
    w = w + np.random.default_rng(seed).normal(0, scale * (w.std() or 1), w.shape).astype(np.float32)
    init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), name))
    return copy


def image_folder(directory: Path, count: int = 6, size=(20, 24), mode: str = "RGB", seed: int = 0) -> Path:
    """`count` random PNG images of `size` (h, w) in `directory` (made), some in a subfolder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (directory / "more").mkdir(parents=True, exist_ok=True)
    for k in range(count):
        shape = size + ((3,) if mode == "RGB" else ())
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels).save(directory / ("more" if k % 2 else "") / f"img{k:02d}.png")
    return directory


# ---- static passes (channel surgery): models with duplicate channels

def duplicate_rows(model: onnx.ModelProto, names, pairs, scales=None) -> onnx.ModelProto:
    """A copy of `model` where, in each initializer of `names` (along axis 0), row j is row r (times s where
    `scales` gives one): `pairs` is [(j, r), ...]. Makes channel j an exact copy (or multiple) of channel r."""
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if init.name in names:
            w = numpy_helper.to_array(init).copy()
            for k, (j, r) in enumerate(pairs):
                w[j] = w[r] * (scales[k] if scales else 1.0)
            init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
    return copy


def run_model(model: onnx.ModelProto, x: np.ndarray):
    """Every output of `model` on `x` in plain onnxruntime (no op library)."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def load_benchmark(name: str):
    """A script of benchmarks/ imported as a module (benchmarks/ is not a package; its scripts import each other)."""
    import importlib.util
    import sys

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(bench) not in sys.path:
        sys.path.insert(0, str(bench))
    spec = importlib.util.spec_from_file_location(name, bench / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
