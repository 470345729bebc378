"""Tests of haste_onnx.data (IDX files, locating/fetching Fashion-MNIST,
preprocessing, image folders) and the sample listing of haste_onnx.imagenet_samples."""
import gzip
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from haste_onnx import data as hd
from haste_onnx.data import fashion_mnist as fm
from haste_onnx.data.idx import _IDX_STEMS
from haste_onnx.data import imagenet_samples as ims


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_idx_round_trip_uint8(tmp_path, name):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    p = hd.write_idx(tmp_path / name, x)
    raw = p.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    if not name.endswith(".gz"):
        # header: magic 0x00000803, then the three sizes big-endian
        assert raw[:4] == bytes([0, 0, 8, 3])
        assert int.from_bytes(raw[4:8], "big") == 7 and int.from_bytes(raw[8:12], "big") == 28
        assert len(raw) == 16 + 7 * 28 * 28
    y = hd.read_idx(p)
    assert y.dtype == np.uint8 and y.shape == (7, 28, 28)
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_other_types(tmp_path, dtype):
    x = (np.arange(24).reshape(2, 3, 4) - 11).astype(dtype)
    y = hd.read_idx(hd.write_idx(tmp_path / "t.idx", x))
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    np.testing.assert_array_equal(x, y)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    p = hd.write_idx(tmp_path / "labels-idx1-ubyte", labels, compress=True)  # no .gz suffix
    np.testing.assert_array_equal(hd.read_idx(p), labels)


def test_idx_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x05abcde")
    with pytest.raises(ValueError, match="magic"):
        hd.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + b"x" * 10)
    with pytest.raises(ValueError, match="truncated"):
        hd.read_idx(short)
    code = tmp_path / "code"
    code.write_bytes(bytes([0, 0, 0x42, 1]) + (1).to_bytes(4, "big") + b"x")
    with pytest.raises(ValueError, match="type code"):
        hd.read_idx(code)


# --------------------------------------------------------------------------
# A small fake data set in MNIST layout
# --------------------------------------------------------------------------

def _make_set(directory, n_train=12, n_test=8, gz=True, dot_names=False, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img_stem, lbl_stem = _IDX_STEMS[split]
        if dot_names:
            img_stem, lbl_stem = img_stem.replace("-idx", ".idx"), lbl_stem.replace("-idx", ".idx")
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        sfx = ".gz" if gz else ""
        hd.write_idx(directory / (img_stem + sfx), x)
        hd.write_idx(directory / (lbl_stem + sfx), y)
        out[split] = (x, y)
    return out


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Hide a system-wide /usr/share/datasets/fashion-mnist from the search."""
    monkeypatch.setattr(fm, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian" / "fashion-mnist")
    monkeypatch.delenv("HASTE_ONNX_CACHE", raising=False)


@pytest.mark.parametrize("gz,dot", [(True, False), (False, False), (False, True)])
def test_load_from_user_path(tmp_path, gz, dot):
    ref = _make_set(tmp_path / "fm", gz=gz, dot_names=dot)
    for split in ("train", "test"):
        x, y = hd.load_fashion_mnist(split, path=tmp_path / "fm")
        assert x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x, ref[split][0])
        np.testing.assert_array_equal(y, ref[split][1].astype(np.int64))
    x, y = hd.load_mnist(tmp_path / "fm", "test")
    np.testing.assert_array_equal(x, ref["test"][0])


def test_search_order_debian_before_cache(tmp_path, monkeypatch):
    deb = tmp_path / "usr-share" / "fashion-mnist"
    cache = tmp_path / "cache"
    ref_cache = _make_set(cache / "fashion-mnist", seed=1)
    monkeypatch.setattr(fm, "DEBIAN_FASHION_MNIST_DIR", deb)
    assert hd.find_fashion_mnist(cache_dir=cache) == cache / "fashion-mnist"
    x, _ = hd.load_fashion_mnist("test", cache_dir=cache)
    np.testing.assert_array_equal(x, ref_cache["test"][0])
    ref_deb = _make_set(deb, seed=2)
    assert hd.find_fashion_mnist(cache_dir=cache) == deb
    x, _ = hd.load_fashion_mnist("test", cache_dir=cache)
    np.testing.assert_array_equal(x, ref_deb["test"][0])
    # the cache root given as a user path is accepted too
    assert hd.find_fashion_mnist(path=cache) == cache / "fashion-mnist"


def test_cache_dir_from_environment(tmp_path, monkeypatch, no_debian):
    _make_set(tmp_path / "envcache" / "fashion-mnist")
    monkeypatch.setenv("HASTE_ONNX_CACHE", str(tmp_path / "envcache"))
    assert hd.default_cache_dir() == tmp_path / "envcache"
    assert hd.find_fashion_mnist() == tmp_path / "envcache" / "fashion-mnist"


def test_missing_data_error_says_how_to_get_it(tmp_path, no_debian):
    with pytest.raises(hd.DatasetNotFoundError) as ei:
        hd.load_fashion_mnist("test", cache_dir=tmp_path / "empty")
    msg = str(ei.value)
    assert "haste-onnx fetch-data fashion-mnist" in msg
    assert "fetch_fashion_mnist()" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert str(tmp_path / "empty" / "fashion-mnist") in msg
    assert isinstance(ei.value, FileNotFoundError)


def test_missing_user_path_error(tmp_path, no_debian):
    with pytest.raises(hd.DatasetNotFoundError, match="fetch-data fashion-mnist") as ei:
        hd.find_fashion_mnist(path=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(ei.value)
    # a directory with only the train split does not satisfy a test-split request
    d = tmp_path / "half"
    _make_set(d)
    (d / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(hd.DatasetNotFoundError):
        hd.find_fashion_mnist(path=d, split="test")
    assert hd.find_fashion_mnist(path=d, split="train") == d
    with pytest.raises(ValueError, match="split"):
        hd.find_fashion_mnist(path=d, split="val")


def test_fetch_flag_calls_fetcher(tmp_path, monkeypatch, no_debian):
    calls = []

    def fake_fetch(cache_dir=None, **kw):
        calls.append(cache_dir)
        _make_set(tmp_path / "c" / "fashion-mnist", n_test=3)
        return tmp_path / "c" / "fashion-mnist"

    monkeypatch.setattr(fm, "fetch_fashion_mnist", fake_fetch)
    with pytest.raises(hd.DatasetNotFoundError):
        hd.load_fashion_mnist("test", cache_dir=tmp_path / "c")
    assert calls == []
    x, y = hd.load_fashion_mnist("test", cache_dir=tmp_path / "c", fetch=True)
    assert calls == [tmp_path / "c"] and x.shape == (3, 28, 28) and y.shape == (3,)


def test_apt_mirror_parsing(monkeypatch):
    out = ("http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages\tbookworm\n"
           "http://deb.debian.org/debian/dists/bookworm-updates/main/binary-amd64/Packages\tbookworm\n"
           "http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-amd64/Packages\tbookworm\n"
           "http://mirror.example/debian/dists/trixie/main/i18n/Translation-en\ttrixie\n")

    def fake_run(cmd, **kw):
        assert cmd[:2] == ["apt-get", "indextargets"]
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")

    monkeypatch.setattr(fm.subprocess, "run", fake_run)
    assert fm._apt_mirrors() == [("http://deb.debian.org/debian", "bookworm"),
                                 ("http://mirror.example/debian", "trixie")]


def test_fetch_returns_existing_cache_without_network(tmp_path, monkeypatch):
    _make_set(tmp_path / "fashion-mnist")

    def boom(*a, **k):
        raise AssertionError("must not run apt-get when the cache is complete")

    monkeypatch.setattr(fm.subprocess, "run", boom)
    assert hd.fetch_fashion_mnist(tmp_path) == tmp_path / "fashion-mnist"


@pytest.mark.slow
def test_fetch_fashion_mnist_for_real(tmp_path):
    """Downloads Debian's dataset-fashion-mnist (31 MB) into a fresh cache: -m slow."""
    import shutil as _sh

    if _sh.which("apt-get") is None or _sh.which("dpkg-deb") is None:
        pytest.skip("needs apt-get and dpkg-deb (Debian/Ubuntu)")
    d = hd.fetch_fashion_mnist(tmp_path)
    assert d == tmp_path / "fashion-mnist"
    x, y = hd.load_idx_dataset(d, "train")
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert abs(x.mean() / 255 - hd.FASHION_MNIST_MEAN) < 1e-3
    assert abs(x.std() / 255 - hd.FASHION_MNIST_STD) < 1e-3


def test_real_fashion_mnist_if_present():
    try:
        d = hd.find_fashion_mnist()
    except hd.DatasetNotFoundError:
        pytest.skip("Fashion-MNIST not on this machine (haste-onnx fetch-data fashion-mnist)")
    x, y = hd.load_idx_dataset(d, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 1000))
    xt = hd.preprocess_fashion_mnist(x[:100])
    assert xt.shape == (100, 1, 32, 32)


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------

def test_fit_pads_28_to_32_centred():
    x = np.arange(2 * 28 * 28, dtype=np.uint16).reshape(2, 28, 28).astype(np.uint8) | 1  # no zeros
    y = hd.fit_to_input(x, (32, 32))
    assert y.shape == (2, 32, 32) and y.dtype == np.uint8
    np.testing.assert_array_equal(y[:, 2:30, 2:30], x)
    mask = np.ones((32, 32), bool)
    mask[2:30, 2:30] = False
    assert (y[:, mask] == 0).all()


def test_fit_pads_odd_with_background():
    x = np.full((1, 27, 25), 9, np.uint8)
    y = hd.fit_to_input(x, (32, 32), background=7)
    # 5 rows of padding: 2 above, 3 below; 7 columns: 3 left, 4 right
    rows = np.where((y[0] == 9).any(1))[0]
    cols = np.where((y[0] == 9).any(0))[0]
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (2, 28, 3, 27)
    assert (y[0][y[0] != 9] == 7).all() and (y == 7).sum() == 32 * 32 - 27 * 25


def test_fit_same_size_is_copy():
    x = np.ones((1, 32, 32), np.uint8)
    y = hd.fit_to_input(x, (32, 32))
    np.testing.assert_array_equal(x, y)
    y[0, 0, 0] = 5
    assert x[0, 0, 0] == 1


def test_resize_bilinear_known_values():
    x = np.array([[[0.0, 4.0], [8.0, 12.0]]])
    y = hd.resize_bilinear(x, (4, 4))
    t = np.array([0.0, 0.25, 0.75, 1.0])  # half-pixel sample positions, clamped at the edges
    expected = 8.0 * t[:, None] + 4.0 * t[None, :]
    np.testing.assert_allclose(y[0], expected)
    # 2x downsampling (half-pixel centres) averages 2x2 blocks
    z = np.arange(16, dtype=float).reshape(1, 4, 4)
    np.testing.assert_allclose(hd.resize_bilinear(z, (2, 2))[0], [[2.5, 4.5], [10.5, 12.5]])


def test_fit_resizes_larger_images():
    x = np.full((3, 40, 36), 200, np.uint8)
    x[:, :, 18:] = 100
    y = hd.fit_to_input(x, (32, 32))
    assert y.shape == (3, 32, 32) and y.dtype == np.uint8
    assert (y[:, :, :14] == 200).all() and (y[:, :, 18:] == 100).all()
    assert set(np.unique(y[:, :, 14:18])) <= set(range(100, 201))
    # channels-last colour images keep their channels
    c = np.zeros((1, 64, 64, 3), np.float32)
    c[..., 1] = 0.5
    yc = hd.fit_to_input(c, (32, 32))
    assert yc.shape == (1, 32, 32, 3) and yc.dtype == np.float32
    np.testing.assert_allclose(yc[..., 1], 0.5)
    with pytest.raises(ValueError):
        hd.fit_to_input(np.zeros((28, 28)), (32, 32))


def test_normalize_values_and_layout():
    x = np.array([[[0, 255]]], np.uint8)  # [1,1,2]
    y = hd.normalize(x)
    assert y.shape == (1, 1, 1, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y[0, 0, 0], [-0.2860 / 0.3530, (1 - 0.2860) / 0.3530], rtol=1e-6)
    # floats are taken to be in [0, 1]
    np.testing.assert_allclose(hd.normalize(np.array([[[0.5]]]), 0.5, 0.25), [[[[0.0]]]])
    # channels-last RGB with per-channel statistics -> NCHW
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[..., 2] = 255
    z = hd.normalize(rgb, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    assert z.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(z[:, 0], -0.2, rtol=1e-6)
    np.testing.assert_allclose(z[:, 2], 1.4, rtol=1e-6)
    with pytest.raises(ValueError):
        hd.normalize(rgb, mean=(0.1, 0.2), std=0.5)


def test_preprocess_fashion_mnist():
    x = np.full((4, 28, 28), 255, np.uint8)
    y = hd.preprocess_fashion_mnist(x)
    assert y.shape == (4, 1, 32, 32) and y.dtype == np.float32
    bg = (0 - 0.2860) / 0.3530
    fg = (1 - 0.2860) / 0.3530
    np.testing.assert_allclose(y[:, 0, :2, :], bg, rtol=1e-6)
    np.testing.assert_allclose(y[:, 0, 2:30, 2:30], fg, rtol=1e-6)


def test_model_input_hw(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 32, 30])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 32, 30])
    g = helper.make_graph([helper.make_node("Relu", ["input"], ["y"])], "g", [inp], [out])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "m.onnx"))
    assert hd.model_input_hw(tmp_path / "m.onnx") == (32, 30)
    assert hd.model_input_hw(m) == (32, 30)


# --------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------

def test_image_folder_npy(tmp_path):
    root = tmp_path / "imgs"
    (root / "b_cls").mkdir(parents=True)
    (root / "a_cls").mkdir()
    (root / "a_cls" / "notes.txt").write_text("ignored")
    a0 = np.full((28, 28), 10, np.uint8)
    a1 = np.full((28, 28), 20, np.uint8)
    b0 = np.full((28, 28), 30, np.uint8)
    np.save(root / "a_cls" / "0.npy", a0)
    np.save(root / "a_cls" / "1.npy", a1)
    np.save(root / "b_cls" / "0.npy", b0[None])  # [1,h,w] (CHW) is accepted
    x, y, classes = hd.load_image_folder(root)
    assert classes == ["a_cls", "b_cls"]
    np.testing.assert_array_equal(y, [0, 0, 1])
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0, 0], [10, 20, 30])
    xp, _, _ = hd.load_image_folder(root, input_hw=(32, 32))
    assert xp.shape == (3, 32, 32) and xp[2, 0, 0] == 0 and xp[2, 2, 2] == 30
    # different sizes need input_hw
    np.save(root / "b_cls" / "1.npy", np.zeros((30, 30), np.uint8))
    with pytest.raises(ValueError, match="input_hw"):
        hd.load_image_folder(root)
    assert hd.load_image_folder(root, input_hw=(32, 32))[0].shape == (4, 32, 32)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        hd.load_image_folder(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="class subfolders"):
        hd.load_image_folder(tmp_path / "empty")
    (tmp_path / "empty" / "c").mkdir()
    with pytest.raises(ValueError, match="no .npy"):
        hd.load_image_folder(tmp_path / "empty")


def test_image_folder_png_needs_pillow(tmp_path, monkeypatch):
    root = tmp_path / "png"
    (root / "c").mkdir(parents=True)
    (root / "c" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import Image` fail
    with pytest.raises(ImportError, match="pip install Pillow"):
        hd.load_image_folder(root)


def test_image_folder_png_with_pillow(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="Pillow (optional) not installed")
    root = tmp_path / "png"
    for cls, v in (("bag", 50), ("coat", 200)):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((28, 28), v, np.uint8)).save(root / cls / "i.png")
    # an RGB image is converted to grey
    Image.fromarray(np.full((28, 28, 3), 100, np.uint8)).save(root / "coat" / "j.png")
    x, y, classes = hd.load_image_folder(root, input_hw=(32, 32))
    assert classes == ["bag", "coat"] and list(y) == [0, 1, 1]
    assert x.shape == (3, 32, 32) and x.dtype == np.uint8
    assert list(x[:, 16, 16]) == [50, 200, 100] and (x[:, 0, :] == 0).all()
    xr, _, _ = hd.load_image_folder(root, mode="RGB")
    assert xr.shape == (3, 28, 28, 3)


# --------------------------------------------------------------------------
# ImageNet sample listing (no Pillow needed)
# --------------------------------------------------------------------------

def test_imagenet_sample_listing_from_wheel_and_folder(tmp_path):
    whl = tmp_path / "foolbox-3.3.4-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("foolbox/data/imagenet_01_559.jpg", b"x")
        z.writestr("foolbox/data/imagenet_00_243.jpg", b"x")
        z.writestr("foolbox/data/cifar10_00_3.png", b"x")
        z.writestr("foolbox/__init__.py", b"")
    items = ims.list_samples(whl)
    assert [(i, lbl) for _, i, lbl in items] == [(0, 243), (1, 559)]
    assert items[0][0] == "foolbox/data/imagenet_00_243.jpg"
    d = tmp_path / "data"
    d.mkdir()
    (d / "imagenet_10_541.jpg").write_bytes(b"x")
    (d / "imagenet_02_438.jpg").write_bytes(b"x")
    assert [(i, lbl) for _, i, lbl in ims.list_samples(d)] == [(2, 438), (10, 541)]
    (tmp_path / "e").mkdir()
    with pytest.raises(ims.SampleNotFoundError, match="foolbox"):
        ims.list_samples(tmp_path / "e")


# --------------------------------------------------------------------------
# The committed ResNet-20 (models/resnet20_fmnist.onnx) and its JSON
# --------------------------------------------------------------------------

def test_committed_resnet20_model():
    import hashlib
    import json
    from pathlib import Path

    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    models = Path(__file__).resolve().parents[1] / "models"
    path, meta_path = models / "resnet20_fmnist.onnx", models / "resnet20_fmnist.json"
    meta = json.loads(meta_path.read_text())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    assert path.stat().st_size < 5 * 2 ** 20
    m = onnx.load(str(path))
    assert m.ir_version == 8 and m.opset_import[0].version == 17
    assert not any(n.op_type == "BatchNormalization" for n in m.graph.node)
    assert hd.model_input_hw(m) == (32, 32)
    assert m.graph.input[0].name == "input" and m.graph.output[0].name == "logits"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    try:
        x, y = hd.load_fashion_mnist("test")
    except hd.DatasetNotFoundError:
        # no data here: at least check it runs with a dynamic batch
        out = sess.run(["logits"], {"input": np.zeros((3, 1, 32, 32), np.float32)})[0]
        assert out.shape == (3, 10)
        pytest.skip("Fashion-MNIST not on this machine: accuracy not checked")
    correct = 0
    for i in range(0, len(x), 1000):
        logits = sess.run(["logits"], {"input": hd.preprocess_fashion_mnist(x[i:i + 1000])})[0]
        correct += int((logits.argmax(1) == y[i:i + 1000]).sum())
    acc = 100.0 * correct / len(x)
    assert abs(acc - meta["onnxruntime_test_accuracy_pct"]) < 0.011, acc
    assert acc > 90.0
