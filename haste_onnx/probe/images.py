"""Probe inputs: images of smooth noise (data-free), or unlabelled images (calibration: data-light).

Every probe image is made in [0, 1] at the size the model takes, then
brought to the model's own layout, value range and normalisation
(`model_inputs.describe_input`: from the user's InputSpec, the graph, the
model's metadata, or stated defaults), so that the model can be fed it.

`synthetic_probe` makes images of smooth noise (Gaussian noise with a 1/f^2
amplitude spectrum, smoother than natural images' 1/f, scaled to [0, 1], then
dark below a random level per image, normalised with the model's mean/std):
no data set is read, so the result stays data-free. (`noise="blocky"`,
uniform values on 4x4-pixel blocks, was the first probe; it ranks layers less
like real images do: docs/ablations.md.)
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import onnx

from ..model_inputs import InputDescription, InputSpec, describe_input

DEFAULT_PROBE_IMAGES = 64
PROBE_PIXELS = DEFAULT_PROBE_IMAGES * 32 * 32  # larger inputs get fewer images: the probe's cost stays about the same
MIN_PROBE_IMAGES = 8
PROBE_SEED = 0
BLOCK = 4  # pixels per side of one block of the blocky noise
PROBE_NOISES = ("smooth", "blocky")
DARK_LEVEL_MAX = 0.6  # smooth noise: each image is dark below a level drawn from [0, this)


def synthetic_probe(model: onnx.ModelProto, count: int = DEFAULT_PROBE_IMAGES, mean: Optional[Sequence[float]] = None,
                    std: Optional[Sequence[float]] = None, seed: int = PROBE_SEED, noise: str = "smooth",
                    inputs: Optional[InputSpec] = None) -> np.ndarray:
    """`count` float32 images of noise for `model`'s input (no data read), in its layout (`describe_input`:
    free dims get the spec's or the default size), normalised with `mean`/`std` unless `inputs` states them
    (None: as `describe_input` infers, e.g. Fashion-MNIST's for 1 channel).

    "smooth": per image and channel, Gaussian noise shaped to a 1/f^2 amplitude spectrum (smoother than
    natural images' 1/f: it ranks layers more like real images do, docs/ablations.md), scaled to [0, 1];
    values below a level drawn uniformly from [0, DARK_LEVEL_MAX) become 0 and the rest are stretched
    back to [0, 1] (images range from no dark regions to mostly dark). "blocky": uniform values on a grid
    of BLOCK x BLOCK pixels.
    """
    if noise not in PROBE_NOISES:
        raise ValueError(f"unknown probe noise {noise!r}; expected one of {', '.join(PROBE_NOISES)}")
    description = describe_input(model, inputs, mean, std, mean_std_origin="the caller")
    return synthetic_images(description, count, seed, noise)


def synthetic_images(description: InputDescription, count: int, seed: int = PROBE_SEED,
                     noise: str = "smooth") -> np.ndarray:
    """`count` images of `noise` (see `synthetic_probe`) prepared for the described input."""
    channels, height, width = description.channels, description.height, description.width
    rng = np.random.default_rng(seed)
    if noise == "blocky":
        coarse = rng.random((count, channels, -(-height // BLOCK), -(-width // BLOCK)), dtype=np.float32)
        images = np.repeat(np.repeat(coarse, BLOCK, axis=2), BLOCK, axis=3)[:, :, :height, :width]
    else:
        images = smooth_noise(rng, (count, channels, height, width))
    return description.prepare(images)


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


def default_probe_count(model: Union[onnx.ModelProto, InputDescription]) -> int:
    """DEFAULT_PROBE_IMAGES for inputs up to 32x32; fewer for larger ones (about PROBE_PIXELS pixels in all,
    at least MIN_PROBE_IMAGES): merging statistics come from the tiles, of which a large image has many."""
    description = model if isinstance(model, InputDescription) else describe_input(model)
    pixels = description.height * description.width
    return int(min(DEFAULT_PROBE_IMAGES, max(MIN_PROBE_IMAGES, round(PROBE_PIXELS / pixels))))


def probe_images(model: onnx.ModelProto, probe_options, mean=None, std=None) -> Tuple[np.ndarray, tuple, tuple, str]:
    """(images, mean, std, what was assumed) for the probe: `probe_options` (a `planner.ProbeOptions`) names
    the source ("synthetic": smooth noise, "synthetic-blocky": the first probe's noise, both data-free;
    "fashion-mnist-train": unlabelled images), the count (None: `default_probe_count`) and the InputSpec
    (`inputs`); with `inputs.calibration` the images are the first ones of that folder (data-light).
    `mean`/`std` (e.g. the evaluation data's) apply unless the spec states its own. The images are float32 in
    the model's layout, size, range and normalisation (`describe_input`); "what was assumed" is one line.
    Raises InputError (one line) for a model the probe cannot feed or images it cannot read."""
    from ..errors import InputError

    spec = getattr(probe_options, "inputs", None) or InputSpec()
    source = probe_options.source
    description = describe_input(model, spec, mean, std)
    count = probe_options.images or default_probe_count(description)
    size = (description.height, description.width)
    if spec.calibration:
        from ..data.folders import load_unlabelled_images

        if source != "synthetic":
            raise InputError(f"calibration images replace the {source} probe; give one of them")
        try:
            raw, files = load_unlabelled_images(spec.calibration, size, description.channels, limit=count)
        except (FileNotFoundError, ValueError, ImportError, OSError) as err:
            raise InputError(f"calibration images: {str(err).splitlines()[0]}") from err
        images = description.prepare(raw)
        assumed = (f"data-light ({len(files)} calibration image(s) from {spec.calibration}, resized to "
                   f"{size[0]}x{size[1]}): {description.summary()}")
        return images, description.mean, description.std, assumed
    if source in ("synthetic", "synthetic-blocky"):
        noise = "blocky" if source == "synthetic-blocky" else "smooth"
        images = synthetic_images(description, count, noise=noise)
        return images, description.mean, description.std, (f"data-free ({count} {source} image(s)): "
                                                               f"{description.summary()}")
    if source == "fashion-mnist-train":
        from .. import data as hdata
        from ..data.preprocess import fit_to_input

        try:
            raw, _ = hdata.load_fashion_mnist("train")
        except hdata.DatasetNotFoundError as err:
            raise InputError(f"--probe fashion-mnist-train: Fashion-MNIST's training split not found; get it with "
                             f"`{hdata.FETCH_COMMAND}`") from err
        if description.channels not in (1, 3):
            raise InputError(f"Fashion-MNIST images need an input of 1 or 3 channels; this one has "
                             f"{description.channels}")
        x = fit_to_input(raw[:count], size, 0).astype(np.float32)[..., None] / 255.0
        images = description.prepare(np.repeat(x, description.channels, axis=-1))
        assumed = f"calibration ({len(images)} Fashion-MNIST training image(s)): {description.summary()}"
        return images, description.mean, description.std, assumed
    raise InputError(f"unknown probe {source!r}")


CHECK_SEED = 2  # the decided check images: neither the probe's own (seed 0) nor int8's calibration (seed 1)


def decided_images(model: onnx.ModelProto, probe_options, count: int, threads=2) -> Tuple[np.ndarray, str]:
    """(images, what they are) to check a fidelity target on: with a calibration folder its images; else the
    `count` most decided of 2 x `count` synthetic images (`fidelity.most_decided`: on noise a classifier
    often hesitates, and any rounding then flips its top-1)."""
    from dataclasses import replace

    from .fidelity import most_decided

    spec = getattr(probe_options, "inputs", None) or InputSpec()
    if spec.calibration:
        images = probe_images(model, replace(probe_options, images=count))[0]
        return images, f"the {len(images)} calibration image(s)"
    description = describe_input(model, spec)
    candidates = synthetic_images(description, 2 * count, seed=CHECK_SEED)
    return most_decided(model, candidates, count, threads), f"the {count} most decided of {2 * count} synthetic images"
