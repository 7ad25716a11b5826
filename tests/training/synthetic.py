"""Generated labelled image datasets: each class is a distinct, learnable pattern plus noise."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def pattern(label_index: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A gray ``size`` x ``size`` image: class ``label_index`` sets stripe angle and frequency."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = np.pi * label_index / 7
    freq = 2 + label_index
    wave = np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)))
    noise = rng.normal(0, 0.25, (size, size))
    image: np.ndarray = np.clip(127 + 100 * wave + 40 * noise, 0, 255).astype(np.uint8)
    return image


def write_folder_dataset(
    root: Path,
    per_label: int,
    *,
    labels: list[str] | None = None,
    size: int = 48,
    test_per_label: int = 0,
    color: bool = False,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_label), ("test", test_per_label)):
        for index, label in enumerate(labels or EMOTIONS):
            if count == 0:
                continue
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                image = pattern(index, size, rng)
                if color:
                    image = cv2.merge([image, np.roll(image, index, axis=1), 255 - image])
                cv2.imwrite(str(folder / f"{n:05d}.png"), image)
    return root


def zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return zip_path


def write_fer_csv(path: Path, per_label: int, *, seed: int = 0) -> Path:
    """FER2013 layout: emotion index in FER order, 48x48 pixels, Usage."""
    rng = np.random.default_rng(seed)
    fer_order = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    lines = ["emotion,pixels,Usage"]
    for fer_index, label in enumerate(fer_order):
        for n in range(per_label):
            image = pattern(EMOTIONS.index(label), 48, rng)
            usage = "PublicTest" if n % 4 == 0 else "Training"
            lines.append(f"{fer_index},{' '.join(map(str, image.flatten()))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path
