"""The images the int8 tactic calibrates on and checks fidelity on: data-free by default.

Data-free: calibration on smooth-noise probe images (`probe.images`, another seed than the check), the
fidelity check on the most decided of twice as many others (`probe.images.decided_images`). Data-light
(`--calibration DIR`): both on the folder's images (the only data there is: the summary says so).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Tuple

import numpy as np
import onnx

CALIBRATION_SEED = 1  # the probe's own images are seed 0, the check's seed 2: all three differ
SMALL_INPUT_PIXELS = 64 * 64
CALIBRATION_IMAGES = (256, 32)  # up to SMALL_INPUT_PIXELS, larger
CHECK_IMAGES = (256, 32)  # up to SMALL_INPUT_PIXELS, larger


def int8_images(model: onnx.ModelProto, probe, count=None, threads=2) -> Tuple[np.ndarray, str, np.ndarray, str]:
    """(calibration images, what they are, check images, what they are), in the model's input format.
    `probe` is the command's ProbeOptions (its InputSpec and calibration folder); `count`: calibration images
    (None: CALIBRATION_IMAGES by input size)."""
    from ..model_inputs import describe_input
    from ..probe.images import decided_images, probe_images, synthetic_images

    spec = probe.inputs
    description = describe_input(model, spec)
    small = description.height * description.width <= SMALL_INPUT_PIXELS
    count = count or CALIBRATION_IMAGES[0 if small else 1]
    checks = CHECK_IMAGES[0 if small else 1]
    if spec.calibration:
        images, _, _, assumed = probe_images(model, replace(probe, images=count))
        return images, assumed, images, f"the same {len(images)} calibration image(s)"
    calibration = synthetic_images(description, count, seed=CALIBRATION_SEED)
    check, check_text = decided_images(model, probe, checks, threads)
    return calibration, f"{count} synthetic probe images (data-free): {description.summary()}", check, check_text
