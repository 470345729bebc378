"""Folders of images, one subfolder per class (DIR/<class>/<image>); Pillow only for .png/.jpg."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .idx import PathLike
from .preprocess import fit_to_input


_NPY_EXT = {".npy"}
_PIL_EXT = {".png", ".jpg", ".jpeg"}


def _import_pil():
    try:
        from PIL import Image  # type: ignore
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "decoding .png/.jpg images needs Pillow, an optional dependency: "
            "pip install Pillow (or convert the images to .npy)") from e
    return Image


def _load_one(path: Path, mode: str) -> np.ndarray:
    if path.suffix.lower() in _NPY_EXT:
        a = np.load(path, allow_pickle=False)
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = a.transpose(1, 2, 0)  # CHW -> HWC
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if mode == "L" and a.ndim == 3:
            if a.shape[-1] != 3:
                raise ValueError(f"{path}: cannot make a grey image from shape {a.shape}")
            a = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        elif mode == "RGB" and a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        if a.ndim != (2 if mode == "L" else 3):
            raise ValueError(f"{path}: unsupported image array shape {a.shape}")
        return a
    Image = _import_pil()
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def load_image_folder(root: PathLike, input_hw: Optional[Tuple[int, int]] = None,
                      mode: str = "L", background: float = 0,
                      ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Load ``root/<class>/<image>`` files (.npy; .png/.jpg/.jpeg with Pillow).

    Classes are the sorted subfolder names, labels their index (as
    torchvision's ImageFolder does). ``mode`` is "L" (grey, [N,H,W]) or "RGB"
    ([N,H,W,3]). With ``input_hw`` every image goes through
    :func:`fit_to_input`; without it all images must have the same size.
    Returns (images, labels int64 [N], class names); images are uint8 when
    every file is uint8, float32 otherwise (not normalised: see :func:`normalize`).
    """
    if mode not in ("L", "RGB"):
        raise ValueError("mode must be 'L' or 'RGB'")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class subfolders (expected {root}/<class>/<image>)")
    files: List[Tuple[Path, int]] = []
    for idx, c in enumerate(classes):
        for f in sorted((root / c).rglob("*")):
            if f.is_file() and f.suffix.lower() in (_NPY_EXT | _PIL_EXT):
                files.append((f, idx))
    if not files:
        raise ValueError(f"{root}: no .npy/.png/.jpg/.jpeg images under the class subfolders")
    if any(f.suffix.lower() in _PIL_EXT for f, _ in files):
        _import_pil()  # fail early with the install hint
    arrays = [_load_one(f, mode) for f, _ in files]
    all_uint8 = all(a.dtype == np.uint8 for a in arrays)
    dtype = np.uint8 if all_uint8 else np.float32
    if input_hw is not None:
        arrays = [fit_to_input(a[None].astype(dtype, copy=False), input_hw, background)[0]
                  for a in arrays]
    else:
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(
                f"{root}: images have different sizes {sorted(shapes)[:4]}...; pass input_hw")
    images = np.stack([a.astype(dtype, copy=False) for a in arrays])
    labels = np.array([i for _, i in files], dtype=np.int64)
    return images, labels, classes


_UNLABELLED_EXT = _NPY_EXT | _PIL_EXT | {".bmp", ".webp", ".tif", ".tiff"}


def load_unlabelled_images(root: PathLike, input_hw: Tuple[int, int], channels: int,
                           limit: Optional[int] = None) -> Tuple[np.ndarray, List[str]]:
    """The images under ``root`` (any depth; sorted by path; .npy, or .png/.jpg/.jpeg/.bmp/.webp/.tif with
    Pillow), the first ``limit`` of them, each resized bilinearly to ``input_hw`` (the aspect ratio is not kept)
    and converted to ``channels`` (1: grey, 3: RGB). Returns (float32 [N,H,W,C] in [0, 1], the files).
    Unlabelled: a calibration set for the probe, or the images `compare` runs."""
    from .preprocess import resize_bilinear

    if channels not in (1, 3):
        raise ValueError(f"images need a model input of 1 or 3 channels; this one has {channels}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in _UNLABELLED_EXT
                   and not any(part.startswith(".") for part in f.relative_to(root).parts))
    if not files:
        raise ValueError(f"{root}: no images (.png, .jpg, .jpeg, .bmp, .webp, .tif, .npy)")
    files = files[:limit] if limit is not None else files
    mode = "L" if channels == 1 else "RGB"
    height, width = int(input_hw[0]), int(input_hw[1])
    out = np.empty((len(files), height, width, channels), np.float32)
    for k, path in enumerate(files):
        if path.suffix.lower() in _NPY_EXT:
            a = _load_one(path, mode)
            a = a.astype(np.float32) / (255.0 if np.issubdtype(a.dtype, np.integer) else 1.0)
            a = resize_bilinear(a[None], (height, width))[0] if a.shape[:2] != (height, width) else a
        else:
            Image = _import_pil()
            with Image.open(path) as im:
                im = im.convert(mode)
                if im.size != (width, height):
                    im = im.resize((width, height), Image.BILINEAR)
                a = np.asarray(im, np.float32) / 255.0
        out[k] = a.reshape(height, width, channels)
    return out, [str(f) for f in files]
