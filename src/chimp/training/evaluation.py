"""Evaluation data and scoring: what the gate runs both models on, and how.

An :class:`EvaluationSet` is labelled images, each with its content hash
(:func:`chimp.training.splits.image_hash`). Sets come from a stored dataset (the policy's
``evaluation_dataset``), from a candidate's held-out split, or from the set recorded with a
version (``evaluation/evaluation-set.zip`` on its run, the training layout: ``test/<label>/``).

:func:`score` runs one version on a set the way serving answers: the version's ONNX file in an
ONNX Runtime session made by :mod:`chimp.shared.onnx_model`, images cut to the face like
training and serving do, and :func:`chimp.shared.preprocessing.preprocess_batch` with the
version's input spec.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from chimp.shared.errors import InvalidInputError
from chimp.shared.onnx_model import OnnxModel, SessionOptions, run_rows, scores_from_outputs
from chimp.shared.preprocessing import UInt8Image, preprocess_batch
from chimp.shared.schemas.continual import EvaluationDataRef
from chimp.shared.schemas.models import ModelMetadata
from chimp.shared.vision import FaceDetector, largest_face_or_center, read_image
from chimp.training.plugins.builtin.image_data import dataset_root, label_folders
from chimp.training.plugins.builtin.reports import confusion_matrix, per_class_metrics
from chimp.training.splits import TEST_SPLIT, image_hash, is_held_out, parse_holdout

EVALUATION_ARTIFACT = "evaluation/evaluation-set.zip"
# A recorded set keeps at most this many images (those with the smallest hashes: a stable,
# label-blind sample), so it does not grow with every promotion.
MAX_RECORDED_IMAGES = 2000
GENERIC_METRICS = ("accuracy", "macro_f1")
PER_LABEL_METRICS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class EvaluationItem:
    content_hash: str
    label: str
    image: UInt8Image = field(repr=False)


@dataclass
class EvaluationSet:
    name: str
    items: list[EvaluationItem]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for item in sorted(self.items, key=lambda i: i.content_hash):
            digest.update(f"{item.content_hash}:{item.label}\n".encode())
        return digest.hexdigest()

    def ref(self) -> EvaluationDataRef:
        return EvaluationDataRef(name=self.name, content_hash=self.content_hash, images=len(self))

    def hashes(self) -> set[str]:
        return {i.content_hash for i in self.items}

    def without(self, hashes: set[str], name: str | None = None) -> EvaluationSet:
        kept = [i for i in self.items if i.content_hash not in hashes]
        return EvaluationSet(name or self.name, kept)

    def merged(self, other: EvaluationSet, name: str) -> EvaluationSet:
        """This set plus ``other``'s images it lacks (its own labels win), capped."""
        known = self.hashes()
        items = self.items + [i for i in other.items if i.content_hash not in known]
        items = sorted(items, key=lambda i: i.content_hash)[:MAX_RECORDED_IMAGES]
        return EvaluationSet(name, items)


def _items(folders: dict[str, list[Path]]) -> list[EvaluationItem]:
    items = []
    for label, paths in folders.items():
        for path in paths:
            image = read_image(path)
            items.append(EvaluationItem(image_hash(image), label, image))
    return items


def read_dataset(root: Path) -> tuple[list[EvaluationItem], list[EvaluationItem]]:
    """``(train, test)`` items of a dataset folder in the training layout."""
    root = dataset_root(root)
    train_dir = root / "train" if (root / "train").is_dir() else root
    test_dir = root / "test" if (root / "test").is_dir() else None
    train = _items(label_folders(train_dir))
    test = _items(label_folders(test_dir)) if test_dir is not None else []
    return train, test


def dataset_set(root: Path, name: str) -> EvaluationSet:
    """Every image of a stored dataset (the policy's ``evaluation_dataset``)."""
    train, test = read_dataset(root)
    if not train and not test:
        raise InvalidInputError(f"evaluation dataset {name!r} holds no labelled images")
    return EvaluationSet(name, train + test)


@dataclass
class CandidateData:
    """What a candidate trained on and what it held out, rebuilt from its training dataset."""

    held_out: EvaluationSet
    trained: set[str]


def candidate_data(root: Path, dataset: str, holdout: str | None) -> CandidateData | None:
    """The candidate's split of the dataset at ``root``, per its ``chimp.holdout`` tag.

    None when the split cannot be rebuilt (no tag, or a layout other than image folders).
    """
    fraction = parse_holdout(holdout)
    if holdout != TEST_SPLIT and fraction is None:
        return None
    train, test = read_dataset(root)
    if holdout == TEST_SPLIT:
        held, used = test, train
    else:
        assert fraction is not None
        held = [i for i in train if is_held_out(i.content_hash, fraction)]
        used = [i for i in train if not is_held_out(i.content_hash, fraction)]
    return CandidateData(
        held_out=EvaluationSet(f"{dataset} (held out)", held),
        trained={i.content_hash for i in used},
    )


def write_set(evaluation: EvaluationSet, path: Path) -> Path:
    """Store a set as a zip in the training layout: ``test/<label>/<content hash>.png``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for item in evaluation.items:
            ok, encoded = cv2.imencode(".png", item.image)
            if not ok:
                raise InvalidInputError(f"cannot encode evaluation image {item.content_hash}")
            zf.writestr(f"test/{item.label}/{item.content_hash}.png", encoded.tobytes())
    return path


def read_set(path: Path, name: str) -> EvaluationSet:
    items = []
    with zipfile.ZipFile(path) as zf:
        for entry in zf.namelist():
            parts = entry.split("/")
            if len(parts) != 3 or parts[0] != "test" or not parts[2].endswith(".png"):
                continue
            data = np.frombuffer(zf.read(entry), dtype=np.uint8)
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if image is None:
                continue
            items.append(EvaluationItem(image_hash(image), parts[1], image))
    return EvaluationSet(name, items)


def metric_names(labels: Iterable[str]) -> list[str]:
    """The metrics :func:`score` reports for a model with these labels."""
    names = list(GENERIC_METRICS)
    for label in labels:
        names += [f"{kind}_{label}" for kind in PER_LABEL_METRICS]
    return names


def _model_images(
    items: list[EvaluationItem], metadata: ModelMetadata, detector: FaceDetector | None
) -> np.ndarray:
    spec = metadata.input
    images: list[UInt8Image] = []
    for item in items:
        image = item.image
        # The same rule as training (image_data): whole frames are cut to the largest face.
        if detector is not None and min(image.shape[:2]) >= 2 * spec.height:
            image = largest_face_or_center(image, detector)
        images.append(image)
    return preprocess_batch(images, spec)


def score(
    onnx_path: Path, metadata: ModelMetadata, evaluation: EvaluationSet, *, threads: int = 2
) -> dict[str, float]:
    """Metrics of one model version on ``evaluation`` (all higher-is-better)."""
    if not evaluation.items:
        raise InvalidInputError("the evaluation data holds no images")
    model = OnnxModel(
        onnx_path,
        SessionOptions(providers=["CPUExecutionProvider"], intra_op_threads=threads),
        input_name=metadata.input.input_name,
        output_name=metadata.input.output_name,
    )
    detector = FaceDetector() if metadata.task == "face-classification" else None
    batch = _model_images(evaluation.items, metadata, detector)
    scores = scores_from_outputs(run_rows(model, batch), metadata.outputs_probabilities)
    predicted = scores.argmax(axis=1).astype(np.int64)
    labels = metadata.labels
    index = {label: n for n, label in enumerate(labels)}
    targets = np.asarray([index.get(i.label, -1) for i in evaluation.items], dtype=np.int64)
    known = targets >= 0
    accuracy = float(np.mean(predicted == targets))  # an unknown label is always wrong
    matrix = confusion_matrix(targets[known], predicted[known], len(labels))
    metrics = per_class_metrics(matrix, labels)
    metrics = {k: v for k, v in metrics.items() if not k.startswith("support_")}
    return {"accuracy": accuracy, **metrics}
