"""Fitting images to a model's input: resizing, padding, normalising."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    import onnx

# The normalisations of the models this project trains and exports (mean, std per channel).
FASHION_MNIST_MEAN_STD = ((0.2860,), (0.3530,))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
FASHION_MNIST_MEAN, FASHION_MNIST_STD = FASHION_MNIST_MEAN_STD[0][0], FASHION_MNIST_MEAN_STD[1][0]



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


def prepare_images(images: np.ndarray, model: onnx.ModelProto, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD,
                   background: float = 0) -> np.ndarray:
    """Raw images ([N,h,w] grey or [N,h,w,3], uint8 or float in [0, 1]) -> float32 NCHW for `model`.

    Fitted to the model's declared input size (`fit_to_input`: padded
    when smaller, resized bilinearly otherwise; left alone when the size is
    symbolic), given the channels the model declares (grey repeated to RGB,
    RGB to grey with the ITU-R 601 weights), then normalised with mean/std.
    """
    from ..model_inputs import input_info

    _, dims = input_info(model)
    if len(dims) != 4:
        raise ValueError(f"the model input is {len(dims)}-D; expected NCHW images")
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if dims[2] is not None and dims[3] is not None:
        x = fit_to_input(x, (dims[2], dims[3]), background)
    channels = dims[1]
    if channels == 3 and x.ndim == 3:
        x = np.repeat(x[..., None], 3, axis=-1)
    elif channels == 1 and x.ndim == 4:
        x = (x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.float32)
        if np.issubdtype(np.asarray(images).dtype, np.integer):
            x = x / 255.0
    y = normalize(x, mean, std)
    if channels is not None and y.shape[1] != channels:
        raise ValueError(f"the model wants {channels} input channels, the images have {y.shape[1]}")
    return y


def preprocess_fashion_mnist(images: np.ndarray, input_hw: Tuple[int, int] = (32, 32)) -> np.ndarray:
    """uint8 [N,28,28] -> float32 [N,1,H,W]: pad/resize with background 0, then normalise."""
    return normalize(fit_to_input(images, input_hw, background=0),
                     FASHION_MNIST_MEAN, FASHION_MNIST_STD)


def model_input_hw(model) -> Tuple[int, int]:
    """(H, W) declared by the first graph input of an ONNX model (path or ModelProto)."""
    import onnx  # a dependency of the package; imported lazily to keep this module light

    from ..model_inputs import input_info

    m = onnx.load(str(model), load_external_data=False) if not hasattr(model, "graph") else model
    name, dims = input_info(m)
    if len(dims) != 4:
        raise ValueError(f"input {name!r} is not 4-D (NCHW)")
    if None in dims[2:]:
        raise ValueError(f"input {name!r} has a symbolic height/width")
    return int(dims[2]), int(dims[3])
