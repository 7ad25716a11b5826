"""Reading labelled image datasets into model-ready arrays.

Two layouts: folders (``train/<label>/*.png|jpg``, optional ``test/<label>/...``; a dataset
whose top level is ``<label>/`` folders counts as all-train) and the FER2013 CSV
(``emotion,pixels,Usage``). Images go through :func:`chimp.shared.preprocessing.preprocess_batch`
with the model's :class:`InputSpec`, the same code serving runs.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from chimp.shared.preprocessing import UInt8Image, preprocess_batch
from chimp.shared.schemas.models import InputSpec
from chimp.shared.vision import FaceDetector, largest_face_or_center, read_image
from chimp.training.splits import image_hash, is_held_out

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}

# FER2013's emotion column indexes this order.
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FER2013_TRAIN_USAGE = "training"


class DatasetError(ValueError):
    """The dataset's layout or content cannot be used; the message says why."""


@dataclass
class Split:
    images: npt.NDArray[np.float32]  # (N, C, H, W)
    targets: npt.NDArray[np.int64]  # (N,)
    hashes: list[str] | None = None  # content hash of each image (chimp.training.splits)

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass
class LabelledData:
    train: Split
    test: Split | None
    labels: list[str]
    source: str  # "folders" or "fer2013-csv"


Progress = Callable[[float, str], None]


def dataset_root(root: Path) -> Path:
    """Skip wrapper folders a zip tool added (``my-dataset/train/...``)."""
    current = root
    for _ in range(3):
        children = [p for p in current.iterdir() if not p.name.startswith((".", "__"))]
        if (current / "train").is_dir() or any(p.suffix == ".csv" for p in children):
            return current
        dirs = [p for p in children if p.is_dir()]
        if len(dirs) == 1 and len(children) == 1:
            current = dirs[0]
            continue
        break
    return current


def label_folders(split_dir: Path) -> dict[str, list[Path]]:
    folders: dict[str, list[Path]] = {}
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "__")):
            continue
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        folders[folder.name.strip().lower()] = files
    return folders


def _load_images(
    files: Sequence[Path],
    spec: InputSpec,
    detector: FaceDetector | None,
    progress: Progress,
    what: str,
    hashes: list[str],
) -> npt.NDArray[np.float32]:
    images: list[UInt8Image] = []
    for index, path in enumerate(files):
        image = read_image(path)
        hashes.append(image_hash(image))
        # Whole frames (calibration shots from a webcam) are cut down to the face first, the
        # way serving crops faces before classifying them.
        if detector is not None and min(image.shape[:2]) >= 2 * spec.height:
            image = largest_face_or_center(image, detector)
        images.append(image)
        if index % 200 == 0:
            progress(index / max(1, len(files)), f"reading {what} images ({index}/{len(files)})")
    return preprocess_batch(images, spec)


def _split_from_folders(
    folders: dict[str, list[Path]],
    labels: list[str],
    spec: InputSpec,
    detector: FaceDetector | None,
    progress: Progress,
    what: str,
) -> Split:
    files: list[Path] = []
    targets: list[int] = []
    for name, paths in folders.items():
        files += paths
        targets += [labels.index(name)] * len(paths)
    hashes: list[str] = []
    return Split(
        images=_load_images(files, spec, detector, progress, what, hashes),
        targets=np.asarray(targets, dtype=np.int64),
        hashes=hashes,
    )


def load_folders(
    root: Path,
    spec: InputSpec,
    *,
    labels: list[str] | None,
    detector: FaceDetector | None,
    progress: Progress,
) -> LabelledData:
    """``labels=None`` takes the label set from the train folder names (sorted)."""
    root = dataset_root(root)
    train_dir = root / "train" if (root / "train").is_dir() else root
    test_dir = root / "test" if (root / "test").is_dir() else None
    train_folders = label_folders(train_dir)
    if not train_folders:
        raise DatasetError("no label folders found: expected train/<label>/*.png|jpg")
    test_folders = label_folders(test_dir) if test_dir is not None else {}
    if labels is None:
        labels = sorted(train_folders)
    unknown = sorted((set(train_folders) | set(test_folders)) - set(labels))
    if unknown:
        raise DatasetError(f"unknown label folder(s) {unknown}; expected some of {labels}")
    if sum(len(v) for v in train_folders.values()) == 0:
        raise DatasetError("the train folders contain no images (.png, .jpg, .jpeg, .bmp, .webp)")
    train = _split_from_folders(train_folders, labels, spec, detector, progress, "train")
    test = None
    if test_folders and any(test_folders.values()):
        test = _split_from_folders(test_folders, labels, spec, detector, progress, "test")
    return LabelledData(train=train, test=test, labels=labels, source="folders")


def find_csv(root: Path) -> Path | None:
    found = sorted(p for p in root.rglob("*.csv") if not p.name.startswith("."))
    return found[0] if found else None


def load_fer2013_csv(path: Path, spec: InputSpec, labels: list[str]) -> LabelledData:
    """FER2013: 48x48 gray pixels as space-separated numbers; Usage 'Training' is train."""
    remap = [labels.index(name) for name in FER2013_LABELS]
    buckets: dict[bool, tuple[list[UInt8Image], list[int]]] = {True: ([], []), False: ([], [])}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{path.name}: missing FER2013 column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                emotion = int(row["emotion"])
                pixels = np.asarray(row["pixels"].split(), dtype=np.uint8)
                side = round(len(pixels) ** 0.5)
                if side * side != len(pixels) or not 0 <= emotion < len(remap):
                    raise ValueError
            except (ValueError, TypeError):
                raise DatasetError(f"{path.name} line {line}: not a FER2013 row") from None
            is_train = (row.get("Usage") or "Training").strip().lower() == FER2013_TRAIN_USAGE
            buckets[is_train][0].append(pixels.reshape(side, side))
            buckets[is_train][1].append(remap[emotion])
    if not buckets[True][0]:
        raise DatasetError(f"{path.name} has no 'Training' rows")

    def split(images: list[UInt8Image], targets: list[int]) -> Split:
        return Split(preprocess_batch(images, spec), np.asarray(targets, dtype=np.int64))

    test = split(*buckets[False]) if buckets[False][0] else None
    return LabelledData(train=split(*buckets[True]), test=test, labels=labels, source="fer2013-csv")


def stratified_split(data: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """Hold out about ``fraction`` of each class (at least one image of any class with two)."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in np.unique(data.targets):
        indexes = np.flatnonzero(data.targets == label)
        if len(indexes) < 2:
            continue
        count = min(len(indexes) - 1, max(1, round(len(indexes) * fraction)))
        held += rng.choice(indexes, size=count, replace=False).tolist()
    if not held or fraction <= 0:
        return data, None
    mask = np.zeros(len(data), dtype=bool)
    mask[held] = True
    return (
        Split(data.images[~mask], data.targets[~mask]),
        Split(data.images[mask], data.targets[mask]),
    )


def hash_split(data: Split, fraction: float) -> tuple[Split, Split | None]:
    """Hold out the images whose content hash falls below ``fraction`` (same in every run)."""
    if data.hashes is None or fraction <= 0:
        return data, None
    mask = np.asarray([is_held_out(h, fraction) for h in data.hashes], dtype=bool)
    if not mask.any() or mask.all():
        return data, None
    kept = [h for h, held in zip(data.hashes, mask, strict=True) if not held]
    held = [h for h, held in zip(data.hashes, mask, strict=True) if held]
    return (
        Split(data.images[~mask], data.targets[~mask], kept),
        Split(data.images[mask], data.targets[mask], held),
    )
