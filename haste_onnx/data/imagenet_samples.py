"""The 20 labelled ImageNet validation images shipped in PyPI ``foolbox`` 3.3.4.

foolbox is only a data source here: install it with ``pip install --no-deps
foolbox==3.3.4`` (it is never imported; its ``foolbox/data/imagenet_<i>_<label>.jpg``
files are read from the installed package directory, or straight out of a
downloaded wheel). The files are 512x512 RGB JPEGs; decoding and resizing
need Pillow (``pip install Pillow``), imported only when images are loaded.

Preprocessing is torchvision's ImageNet evaluation transform: resize the
shorter side to 256 (bilinear), centre crop 224x224, scale to [0, 1],
normalise with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225),
NCHW float32.
"""
from __future__ import annotations

import importlib.util
import io
import re
import zipfile
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from .preprocess import IMAGENET_MEAN_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FOOLBOX_INSTALL",
    "SampleNotFoundError",
    "find_foolbox_data",
    "list_samples",
    "load_imagenet_images",
    "preprocess_imagenet",
    "load_imagenet_samples",
]

IMAGENET_MEAN, IMAGENET_STD = IMAGENET_MEAN_STD
FOOLBOX_INSTALL = "pip install --no-deps foolbox==3.3.4"
_NAME = re.compile(r"^imagenet_(\d+)_(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


class SampleNotFoundError(FileNotFoundError):
    """The foolbox sample images are not available; the message says how to get them."""


def find_foolbox_data() -> Path:
    """``foolbox/data`` of the installed foolbox package (found without importing it)."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise SampleNotFoundError(
            "the ImageNet sample images come from the foolbox package, which is not installed: "
            f"{FOOLBOX_INSTALL} (or pass the path of its wheel / data folder)")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not d.is_dir():
        raise SampleNotFoundError(f"{d} does not exist; reinstall: {FOOLBOX_INSTALL}")
    return d


def list_samples(source: Optional[Union[str, Path]] = None) -> List[Tuple[str, int, int]]:
    """(name, index, label) of the ImageNet samples, sorted by index.

    ``source``: a folder holding ``imagenet_<i>_<label>.jpg`` files, a foolbox
    wheel (.whl), or None for the installed foolbox package.
    """
    src = Path(source) if source is not None else find_foolbox_data()
    if src.is_file() and src.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(src) as z:
            names = [n for n in z.namelist() if n.startswith("foolbox/data/")]
    elif src.is_dir():
        names = [p.name for p in src.iterdir()]
    else:
        raise SampleNotFoundError(f"{src}: neither a folder nor a foolbox wheel")
    out = []
    for n in names:
        m = _NAME.match(n.rsplit("/", 1)[-1])
        if m:
            out.append((n, int(m.group(1)), int(m.group(2))))
    if not out:
        raise SampleNotFoundError(f"{src}: no imagenet_<i>_<label>.jpg files ({FOOLBOX_INSTALL})")
    return sorted(out, key=lambda t: t[1])


def _pil():
    try:
        from PIL import Image  # type: ignore
    except ImportError as e:
        raise ImportError("decoding the ImageNet sample JPEGs needs Pillow: pip install Pillow") from e
    return Image


def load_imagenet_images(source: Optional[Union[str, Path]] = None):
    """Decoded RGB ``PIL.Image`` objects and their labels (int64 array)."""
    Image = _pil()
    src = Path(source) if source is not None else find_foolbox_data()
    items = list_samples(src)
    images = []
    if src.is_file():
        with zipfile.ZipFile(src) as z:
            for name, _, _ in items:
                with Image.open(io.BytesIO(z.read(name))) as im:
                    images.append(im.convert("RGB"))
    else:
        for name, _, _ in items:
            with Image.open(src / name) as im:
                images.append(im.convert("RGB"))
    labels = np.array([lbl for _, _, lbl in items], dtype=np.int64)
    return images, labels


def preprocess_imagenet(images, resize: int = 256, crop: int = 224,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """PIL images (or uint8 HxWx3 arrays) -> float32 [N,3,crop,crop], torchvision-style."""
    Image = _pil()
    out = np.empty((len(images), 3, crop, crop), dtype=np.float32)
    m = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            im = Image.fromarray(im)
        im = im.convert("RGB")
        w, h = im.size
        # torchvision Resize(int): shorter side -> resize, the other scaled (truncated)
        if w <= h:
            nw, nh = resize, int(resize * h / w)
        else:
            nw, nh = int(resize * w / h), resize
        im = im.resize((nw, nh), Image.BILINEAR)
        top = int(round((nh - crop) / 2.0))
        left = int(round((nw - crop) / 2.0))
        im = im.crop((left, top, left + crop, top + crop))
        a = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
        out[i] = (a - m) / s
    return out


def load_imagenet_samples(source: Optional[Union[str, Path]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The 20 foolbox ImageNet samples preprocessed: float32 [20,3,224,224], labels int64 [20]."""
    images, labels = load_imagenet_images(source)
    return preprocess_imagenet(images), labels
