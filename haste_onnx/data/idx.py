"""IDX files (the MNIST family's format): read, write, and a train/test split of images and labels."""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}


class DatasetNotFoundError(FileNotFoundError):
    """A data set is not on this machine; the message says how to get it."""



def _open_maybe_gzip(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed, detected from its bytes).

    Returns a native-endian array with the shape stored in the file
    (uint8 for the MNIST-family images and labels).
    """
    path = Path(path)
    with _open_maybe_gzip(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    count = int(np.prod(shape, dtype=np.int64)) if ndim else 1
    need = header + count * dtype.itemsize
    if len(data) < need:
        raise ValueError(f"{path}: truncated IDX data ({len(data)} bytes, expected {need})")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: PathLike, array: np.ndarray, compress: Optional[bool] = None) -> Path:
    """Write ``array`` as an IDX file; gzip it if ``compress`` (default: path ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(f"dtype {array.dtype} cannot be stored in IDX")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def find_idx_file(directory: PathLike, stem: str) -> Optional[Path]:
    """The file for ``stem`` in ``directory``: raw or .gz, '-idx' or '.idx' spelling."""
    directory = Path(directory)
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def _check_split(split: str) -> None:
    if split not in _IDX_STEMS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")


def _has_split(directory: Path, split: str) -> bool:
    return all(find_idx_file(directory, s) is not None for s in _IDX_STEMS[split])


def load_idx_dataset(directory: PathLike, split: str = "test") -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N,h,w] and labels int64 [N] of an MNIST-layout IDX directory."""
    _check_split(split)
    directory = Path(directory)
    img_stem, lbl_stem = _IDX_STEMS[split]
    img_path, lbl_path = find_idx_file(directory, img_stem), find_idx_file(directory, lbl_stem)
    missing = [s for s, p in ((img_stem, img_path), (lbl_stem, lbl_path)) if p is None]
    if missing:
        raise DatasetNotFoundError(
            f"{directory}: no {' or '.join(missing)}[.gz] for the {split!r} split")
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{directory}: inconsistent {split} files: images {images.shape}, labels {labels.shape}")
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


