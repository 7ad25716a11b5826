"""A fake webcam for Chromium: a Y4M clip made from a real face photo bundled with scikit-image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT = 640, 480


def face_frame() -> np.ndarray:
    """The astronaut portrait, scaled to fit and centred on a 640x480 BGR frame."""
    rgb: np.ndarray = data.astronaut()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    side = HEIGHT
    scaled = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA)
    frame = np.full((HEIGHT, WIDTH, 3), 32, dtype=np.uint8)
    x0 = (WIDTH - side) // 2
    frame[:, x0 : x0 + side] = scaled
    return frame


def write_y4m(path: Path, frame: np.ndarray, frames: int = 15, fps: int = 15) -> Path:
    """Write ``frames`` copies of ``frame`` as a 4:2:0 YUV4MPEG2 clip (Chromium loops it)."""
    height, width = frame.shape[:2]
    planes = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(planes)
    return path
