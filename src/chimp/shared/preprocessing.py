"""Image -> model input tensor. The ONE place preprocessing lives.

Training, serving and evaluation all call these functions with the version's
:class:`~chimp.shared.schemas.models.InputSpec`, so a model sees the same pixels in
production that it saw in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from chimp.shared.schemas.models import InputSpec

# OpenCV's stubs type images loosely (MatLike); uint8 is the convention, not enforced.
UInt8Image = npt.NDArray[Any]
FloatTensor = npt.NDArray[np.float32]


def to_color(image: UInt8Image, spec: InputSpec) -> UInt8Image:
    """Convert a gray (H, W), BGR (H, W, 3) or BGRA image to the spec's colour space."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if spec.color == "gray":
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return image
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_to(image: UInt8Image, spec: InputSpec) -> UInt8Image:
    """The image at the spec's size: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[0] == spec.height and image.shape[1] == spec.width:
        return image
    shrinking = image.shape[0] > spec.height
    return cv2.resize(
        image,
        (spec.width, spec.height),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )


def to_chw(image: UInt8Image, spec: InputSpec) -> FloatTensor:
    """One image as a float32 (C, H, W) array: resized, colour-converted, scaled, normalised."""
    image = resize_to(to_color(image, spec), spec)
    array = image.astype(np.float32) * np.float32(spec.scale)
    array = array[np.newaxis, :, :] if array.ndim == 2 else np.transpose(array, (2, 0, 1))
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(-1, 1, 1)
    return np.ascontiguousarray((array - mean) / std, dtype=np.float32)


def preprocess(image: UInt8Image, spec: InputSpec) -> FloatTensor:
    """One image as a batch of one: float32 (1, C, H, W)."""
    return to_chw(image, spec)[np.newaxis]


def preprocess_batch(images: Sequence[UInt8Image], spec: InputSpec) -> FloatTensor:
    """Many images as one float32 (N, C, H, W) batch."""
    if not images:
        return np.zeros((0, spec.channels, spec.height, spec.width), dtype=np.float32)
    return np.stack([to_chw(img, spec) for img in images])


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: npt.NDArray[np.float32] = (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
    return result
