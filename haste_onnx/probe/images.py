"""Probe inputs: images of smooth noise (data-free), or unlabelled images (calibration).

`synthetic_probe` makes images of smooth noise (Gaussian noise with a 1/f^2
amplitude spectrum, smoother than natural images' 1/f, scaled to [0, 1], then
dark below a random level per image, normalised with the model's mean/std):
no data set is read, so the result stays data-free. (`noise="blocky"`,
uniform values on 4x4-pixel blocks, was the first probe; it ranks layers less
like real images do: docs/ablations.md.)
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import onnx

from ..data.preprocess import FASHION_MNIST_MEAN_STD, IMAGENET_MEAN_STD
from ..model_inputs import image_inputs, input_channels, input_info

DEFAULT_PROBE_IMAGES = 64
PROBE_PIXELS = DEFAULT_PROBE_IMAGES * 32 * 32  # larger inputs get fewer images: the probe's cost stays about the same
MIN_PROBE_IMAGES = 8
PROBE_SEED = 0
BLOCK = 4  # pixels per side of one block of the blocky noise
PROBE_NOISES = ("smooth", "blocky")
DARK_LEVEL_MAX = 0.6  # smooth noise: each image is dark below a level drawn from [0, this)


def synthetic_probe(model: onnx.ModelProto, count: int = DEFAULT_PROBE_IMAGES, mean: Sequence[float] = FASHION_MNIST_MEAN_STD[0],
                    std: Sequence[float] = FASHION_MNIST_MEAN_STD[1], seed: int = PROBE_SEED, noise: str = "smooth") -> np.ndarray:
    """`count` float32 NCHW images of noise for `model`'s first input (no data read).

    "smooth": per image and channel, Gaussian noise shaped to a 1/f^2 amplitude spectrum (smoother than
    natural images' 1/f: it ranks layers more like real images do, docs/ablations.md), scaled to [0, 1];
    values below a level drawn uniformly from [0, DARK_LEVEL_MAX) become 0 and the rest are stretched
    back to [0, 1] (images range from no dark regions to mostly dark). "blocky": uniform values on a grid
    of BLOCK x BLOCK pixels.
    """
    if noise not in PROBE_NOISES:
        raise ValueError(f"unknown probe noise {noise!r}; expected one of {', '.join(PROBE_NOISES)}")
    _, dims = input_info(model)
    if len(dims) != 4 or any(d is None for d in dims[1:]):
        shape = "x".join("?" if d is None else str(d) for d in dims)
        raise ValueError(f"the synthetic probe needs a model input of fixed shape NxCxHxW; this model's is {shape}")
    _, channels, height, width = dims
    rng = np.random.default_rng(seed)
    if noise == "blocky":
        coarse = rng.random((count, channels, -(-height // BLOCK), -(-width // BLOCK)), dtype=np.float32)
        images = np.repeat(np.repeat(coarse, BLOCK, axis=2), BLOCK, axis=3)[:, :, :height, :width]
    else:
        images = smooth_noise(rng, (count, channels, height, width))
    mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((images - mean) / std, dtype=np.float32)


def smooth_noise(rng: np.random.Generator, shape: Tuple[int, int, int, int]) -> np.ndarray:
    """Images in [0, 1] of 1/f^2 noise with dark regions (see `synthetic_probe`)."""
    n, c, h, w = shape
    freq = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    freq[0, 0] = 1.0  # the mean is rescaled away below
    spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / freq ** 2
    images = np.real(np.fft.ifft2(spectrum))
    low, high = images.min(axis=(2, 3), keepdims=True), images.max(axis=(2, 3), keepdims=True)
    images = (images - low) / np.maximum(high - low, 1e-12)
    level = rng.random((n, 1, 1, 1)) * DARK_LEVEL_MAX
    return (np.maximum(images - level, 0.0) / (1.0 - level)).astype(np.float32)


def default_mean_std(model: onnx.ModelProto) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Fashion-MNIST's normalisation for 1-channel inputs, ImageNet's for 3 channels, else 0.5 / 0.25."""
    channels = input_channels(model)
    if channels == 1:
        return FASHION_MNIST_MEAN_STD
    if channels == 3:
        return IMAGENET_MEAN_STD
    return (0.5,), (0.25,)


def default_probe_count(model: onnx.ModelProto) -> int:
    """DEFAULT_PROBE_IMAGES for inputs up to 32x32; fewer for larger ones (about PROBE_PIXELS pixels in all,
    at least MIN_PROBE_IMAGES): merging statistics come from the tiles, of which a large image has many."""
    dims = input_info(model)[1]
    if len(dims) != 4 or not dims[2] or not dims[3]:
        return DEFAULT_PROBE_IMAGES
    return int(min(DEFAULT_PROBE_IMAGES, max(MIN_PROBE_IMAGES, round(PROBE_PIXELS / (dims[2] * dims[3])))))


def probe_images(model: onnx.ModelProto, probe: str, count: Optional[int], mean=None, std=None):
    """(images, mean, std) for `probe`: "synthetic" (smooth noise, no data), "synthetic-blocky" (the first
    probe's noise, no data) or "fashion-mnist-train" (unlabelled images: calibration)."""
    from ..errors import InputError

    if len(image_inputs(model)) > 1:
        raise InputError("the probe feeds one image input; this model has several inputs")
    if count is None:
        count = default_probe_count(model)
    if mean is None or std is None:
        mean, std = default_mean_std(model)
    if probe in ("synthetic", "synthetic-blocky"):
        noise = "blocky" if probe == "synthetic-blocky" else "smooth"
        try:
            return synthetic_probe(model, count, mean, std, noise=noise), mean, std
        except ValueError as err:
            raise InputError(str(err)) from err
    if probe == "fashion-mnist-train":
        from .. import data as hdata
        from ..data.preprocess import prepare_images

        try:
            raw, _ = hdata.load_fashion_mnist("train")
        except hdata.DatasetNotFoundError as err:
            raise InputError(f"--probe fashion-mnist-train: Fashion-MNIST's training split not found; get it with "
                             f"`{hdata.FETCH_COMMAND}`") from err
        return prepare_images(raw[:count], model, mean, std), mean, std
    raise InputError(f"unknown probe {probe!r}")

