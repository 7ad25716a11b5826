"""Image bytes -> faces -> crops preprocessed per the version's input spec -> scores.

Decoding, detection and preprocessing are OpenCV calls: they run together in one worker thread
behind the image limiter. Inference then goes through the model's runner (and its batching),
so the faces of one image are one ONNX Runtime call.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass

import anyio
import anyio.to_thread
import numpy as np

from chimp.serving.config import DetectorConfig
from chimp.serving.model_manager import Resolved
from chimp.serving.schemas import PredictMode
from chimp.shared.onnx_model import scores_from_outputs
from chimp.shared.preprocessing import FloatTensor, preprocess, preprocess_batch
from chimp.shared.schemas.models import (
    Box,
    FacePrediction,
    ImagePrediction,
    InputSpec,
)
from chimp.shared.vision import FaceDetector, FaceDetectorConfig, crop, decode_image, to_gray


@dataclass(frozen=True)
class PreparedImage:
    width: int
    height: int
    boxes: list[Box | None]
    batch: FloatTensor


def top_label(row: np.ndarray, labels: list[str]) -> tuple[str, float, dict[str, float]]:
    """One row of scores as (best label, its score, every label's score)."""
    best = int(np.argmax(row))
    scores = {label: float(v) for label, v in zip(labels, row, strict=True)}
    return labels[best], float(row[best]), scores


def face_predictions(
    boxes: list[Box | None], scores: np.ndarray, labels: list[str]
) -> list[FacePrediction]:
    out: list[FacePrediction] = []
    for box, row in zip(boxes, scores, strict=True):
        label, score, per_label = top_label(row, labels)
        out.append(FacePrediction(box=box, scores=per_label, label=label, score=score))
    return out


class ImagePipeline:
    def __init__(self, config: DetectorConfig, limiter: anyio.CapacityLimiter) -> None:
        self._config = config
        self._limiter = limiter
        self._detector_config = FaceDetectorConfig(
            cascade=config.cascade,
            scale_factor=config.scale_factor,
            min_neighbors=config.min_neighbors,
            min_size=config.min_size,
            max_side=config.max_side,
        )
        # Cascade classifiers are not safe to share between threads: one per concurrent call.
        self._detectors: queue.SimpleQueue[FaceDetector] = queue.SimpleQueue()

    def _detect(self, image: np.ndarray) -> list[Box]:
        try:
            detector = self._detectors.get_nowait()
        except queue.Empty:
            detector = FaceDetector(self._detector_config)
        try:
            return detector.detect(image)[: self._config.max_faces]
        finally:
            self._detectors.put(detector)

    def prepare_sync(self, data: bytes, spec: InputSpec, mode: PredictMode) -> PreparedImage:
        image = decode_image(data)
        height, width = image.shape[:2]
        if mode == "whole":
            return PreparedImage(width, height, [None], preprocess(image, spec))
        # Gray models: convert once, then detect and crop on the gray image.
        base = to_gray(image) if spec.color == "gray" else image
        boxes = self._detect(base)
        crops = [crop(base, box, self._config.crop_margin) for box in boxes]
        return PreparedImage(width, height, list(boxes), preprocess_batch(crops, spec))

    async def predict(
        self, resolved: Resolved, data: bytes, mode: PredictMode | None
    ) -> ImagePrediction:
        model = resolved.model
        metadata = model.metadata
        chosen: PredictMode = mode or (
            "faces" if metadata.task == "face-classification" else "whole"
        )
        prepared = await anyio.to_thread.run_sync(
            self.prepare_sync, data, metadata.input, chosen, limiter=self._limiter
        )
        faces: list[FacePrediction] = []
        if prepared.boxes:
            outputs = await model.runner.infer_rows(prepared.batch)
            scores = scores_from_outputs(outputs, metadata.outputs_probabilities)
            faces = face_predictions(prepared.boxes, scores, metadata.labels)
        return ImagePrediction(
            model=resolved.ref,
            mode=chosen,
            width=prepared.width,
            height=prepared.height,
            faces=faces,
        )
