"""Image decoding and face detection shared by training (calibration frames) and serving."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from chimp.shared.errors import InvalidInputError
from chimp.shared.preprocessing import UInt8Image
from chimp.shared.schemas.models import Box

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_END = b"\xff\xd9"
# JPEG start-of-frame markers (they carry the size); C4, C8 and CC are other segments.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

# A few kilobytes of well-compressed PNG can claim gigapixels; decoding would take gigabytes.
MAX_IMAGE_PIXELS = 40_000_000


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF:
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + length
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a JPEG or PNG header without decoding, or None if unknown."""
    if data.startswith(_PNG_MAGIC) and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(_JPEG_MAGIC):
        return _jpeg_dimensions(data)
    return None


def decode_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS) -> UInt8Image:
    """Decode JPEG or PNG bytes to a BGR uint8 image.

    Raises :class:`InvalidInputError` for anything that is not a complete JPEG/PNG: OpenCV
    happily decodes a truncated JPEG into a half-grey picture, so the end marker is checked.
    An image whose header claims more than ``max_pixels`` is refused before it is decoded.
    """
    if not data:
        raise InvalidInputError("empty image")
    if data.startswith(_JPEG_MAGIC):
        if not data.rstrip(b"\x00").endswith(_JPEG_END):
            raise InvalidInputError("truncated JPEG: the end-of-image marker is missing")
    elif not data.startswith(_PNG_MAGIC):
        raise InvalidInputError("not a JPEG or PNG image")
    size = image_dimensions(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise InvalidInputError(
            f"image too large: {size[0]}x{size[1]} pixels (at most {max_pixels:,} pixels)"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise InvalidInputError("corrupt image: it could not be decoded")
    decoded: UInt8Image = image
    return decoded


def read_image(path: Path) -> UInt8Image:
    """Read an image file from disk (any format OpenCV knows) as BGR."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInputError(f"corrupt or unsupported image file: {path.name}")
    result: UInt8Image = image
    return result


def to_gray(image: UInt8Image) -> UInt8Image:
    if image.ndim == 2:
        return image
    gray: UInt8Image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return gray


@dataclass(frozen=True)
class FaceDetectorConfig:
    cascade: str = "haarcascade_frontalface_default.xml"
    scale_factor: float = 1.2
    min_neighbors: int = 5
    min_size: int = 40
    # Detection runs on a copy downscaled so its longer side is at most this many pixels;
    # Haar cost grows with area and faces in webcam frames are large.
    max_side: int = 320


class FaceDetector:
    """OpenCV Haar-cascade face detector. Thread-safe use needs one instance per thread."""

    def __init__(self, config: FaceDetectorConfig | None = None) -> None:
        self.config = config or FaceDetectorConfig()
        cascades = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        path = cascades / self.config.cascade
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(f"face cascade not found: {path}")

    def detect(self, image: UInt8Image) -> list[Box]:
        """Faces in ``image`` (gray or BGR), largest first, in original pixel coordinates."""
        gray = to_gray(image)
        height, width = gray.shape[:2]
        factor = min(1.0, self.config.max_side / max(height, width))
        small = gray
        if factor < 1.0:
            small = cv2.resize(
                gray, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA
            )
        min_side = max(12, round(self.config.min_size * factor))
        found = self._cascade.detectMultiScale(
            small,
            scaleFactor=self.config.scale_factor,
            minNeighbors=self.config.min_neighbors,
            minSize=(min_side, min_side),
        )
        boxes = [
            Box(x=round(x / factor), y=round(y / factor), w=round(w / factor), h=round(h / factor))
            for (x, y, w, h) in np.asarray(found).reshape(-1, 4).tolist()
        ]
        return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)


def crop(image: UInt8Image, box: Box, margin: float = 0.0) -> UInt8Image:
    """The part of ``image`` inside ``box`` grown by ``margin`` (fraction of its size), clipped."""
    height, width = image.shape[:2]
    dx, dy = round(box.w * margin), round(box.h * margin)
    x0, y0 = max(0, box.x - dx), max(0, box.y - dy)
    x1, y1 = min(width, box.x + box.w + dx), min(height, box.y + box.h + dy)
    if x1 <= x0 or y1 <= y0:
        raise InvalidInputError("face box lies outside the image")
    region: UInt8Image = image[y0:y1, x0:x1]
    return region


def center_square(image: UInt8Image) -> UInt8Image:
    """The largest centred square of ``image`` (fallback when no face is found)."""
    height, width = image.shape[:2]
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    region: UInt8Image = image[y0 : y0 + side, x0 : x0 + side]
    return region


def largest_face_or_center(
    image: UInt8Image, detector: FaceDetector, margin: float = 0.1
) -> UInt8Image:
    """Crop the largest face, or the centre square when none is found."""
    faces = detector.detect(image)
    if faces:
        return crop(image, faces[0], margin)
    return center_square(image)


__all__ = [
    "MAX_IMAGE_PIXELS",
    "FaceDetector",
    "FaceDetectorConfig",
    "center_square",
    "crop",
    "decode_image",
    "image_dimensions",
    "largest_face_or_center",
    "read_image",
    "to_gray",
]
