"""The built-in image plugins run in-process with a recording connector (no MLflow)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from chimp.shared.preprocessing import preprocess
from chimp.shared.schemas.models import InputSpec, ModelMetadata, ModelVersionInfo
from chimp.shared.schemas.monitoring import REFERENCE_ARTIFACT, REFERENCE_TAG, PredictionReference
from chimp.training.plugins import BasePlugin, PluginContext, ProductionModel, TaskCancelledError
from chimp.training.plugins.builtin.emotion_recognition import EMOTIONS, EmotionRecognitionPlugin
from chimp.training.plugins.builtin.image_classification import ImageClassificationPlugin
from chimp.training.plugins.builtin.image_data import DatasetError, load_fer2013_csv, load_folders
from tests.training.synthetic import write_fer_csv, write_folder_dataset

GRAY48 = InputSpec(height=48, width=48)


class RecordingConnector:
    """Records what a plugin stores, and what it logs to its run through the context."""

    def __init__(self, production: ProductionModel | None = None) -> None:
        self.production = production
        self.stored: list[tuple[str, Path, ModelMetadata, dict[str, Any]]] = []
        self.params: dict[str, Any] = {}
        self.metrics: list[tuple[int, dict[str, float]]] = []  # (step, values)

    def get_production_model(
        self, name: str, *, alias: str = "production"
    ) -> ProductionModel | None:
        return self.production

    def store_model(
        self, name: str, onnx_path: Path, metadata: ModelMetadata | None, **kw: Any
    ) -> None:
        assert metadata is not None, "built-in plugins always store CHIMP metadata"
        self.stored.append((name, onnx_path, metadata, kw))


def make_context(
    plugin: type[BasePlugin],
    tmp: Path,
    arguments: dict[str, Any],
    data: Path,
    connector: RecordingConnector,
    **kwargs: Any,
) -> PluginContext:
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    return PluginContext(
        task_id="t",
        arguments=plugin.info.validate_arguments(arguments),
        datasets={"train": data},
        dataset_names={"train": "ds"},
        tmp_dir=work,
        connector=connector,
        logger=logging.getLogger("test"),
        params_sink=connector.params.update,
        metrics_sink=lambda metrics, step: connector.metrics.append((step, dict(metrics))),
        **kwargs,
    )


def test_fer2013_csv_is_read_with_its_usage_split(tmp_path: Path) -> None:
    data = load_fer2013_csv(write_fer_csv(tmp_path / "fer.csv", per_label=4), GRAY48, EMOTIONS)
    assert data.source == "fer2013-csv"
    assert len(data.train) == 21
    assert data.test is not None
    assert len(data.test) == 7
    assert data.train.images.shape[1:] == (1, 48, 48)
    # FER's index 6 is neutral, which is index 4 in CHIMP's label order.
    assert sorted(set(data.test.targets.tolist())) == list(range(7))


def test_bad_fer_csv_is_a_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    path.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_fer2013_csv(path, GRAY48, EMOTIONS)


def test_unknown_label_folders_are_refused(tmp_path: Path) -> None:
    root = write_folder_dataset(tmp_path / "ds", 1, labels=["happy", "bored"])
    with pytest.raises(DatasetError, match="bored"):
        load_folders(root, GRAY48, labels=EMOTIONS, detector=None, progress=lambda f, m: None)


def test_webcam_frames_are_cut_to_the_face(tmp_path: Path) -> None:
    from skimage import data as skdata

    from chimp.shared.vision import FaceDetector

    photo = skdata.astronaut()
    frame = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)  # 512x512 with one face
    folder = tmp_path / "ds" / "train" / "happy"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "frame.png"), frame)
    loaded = load_folders(
        tmp_path / "ds",
        GRAY48,
        labels=EMOTIONS,
        detector=FaceDetector(),
        progress=lambda f, m: None,
    )
    face = FaceDetector().detect(frame)[0]
    assert face.w < 300  # the face is a small part of the frame
    whole = preprocess(frame, GRAY48)[0]
    assert not np.allclose(loaded.train.images[0], whole)


@pytest.mark.slow
def test_image_classification_trains_rgb_and_exports_matching_onnx(tmp_path: Path) -> None:
    data = write_folder_dataset(tmp_path / "ds", 5, labels=["circle", "square"], color=True)
    connector = RecordingConnector()
    context = make_context(
        ImageClassificationPlugin, tmp_path,
        {"model_name": "shapes", "epochs": 1, "image_size": 32}, data, connector,
    )  # fmt: skip
    result = ImageClassificationPlugin().run(context)
    assert result["labels"] == ["circle", "square"]
    ((name, onnx_path, metadata, extra),) = connector.stored
    assert name == "shapes"
    assert metadata.task == "image-classification"
    assert (metadata.input.channels, metadata.input.color, metadata.input.height) == (3, "rgb", 32)
    assert extra["metrics"]["onnx_max_abs_diff"] < 1e-3
    # Params and the one epoch's metrics went to the run while training, not with the model.
    assert connector.params["epochs"] == 1
    assert connector.params["train_images"] + connector.params["test_images"] == 10
    assert [step for step, _ in connector.metrics] == [0]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(
        connector.metrics[0][1]
    )
    assert "metric_history" not in extra
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((5, 3, 32, 32), np.float32)})[0].shape == (5, 2)
    # The version's monitoring reference: what it predicted on the held-out images.
    reference = PredictionReference.model_validate_json(extra["tags"][REFERENCE_TAG])
    assert reference.count == connector.params["test_images"]
    assert set(reference.label_counts) == {"circle", "square"}
    assert reference.split == "0.2 of train"
    (artifact,) = [p for p in extra["artifacts"] if p.name == REFERENCE_ARTIFACT]
    assert PredictionReference.model_validate_json(artifact.read_text()) == reference


@pytest.mark.slow
def test_calibration_fine_tunes_the_production_model(tmp_path: Path) -> None:
    data = write_folder_dataset(tmp_path / "ds", 3)
    first = RecordingConnector()
    EmotionRecognitionPlugin().run(
        make_context(EmotionRecognitionPlugin, tmp_path, {"epochs": 1}, data, first)
    )
    ((_, onnx_path, metadata, _),) = first.stored
    production = ProductionModel(
        onnx_path=onnx_path,
        version=ModelVersionInfo(name="emotion-recognition", version="7", metadata=metadata),
    )
    second = RecordingConnector(production)
    (tmp_path / "calib").mkdir()
    result = EmotionRecognitionPlugin().run(
        make_context(
            EmotionRecognitionPlugin, tmp_path / "calib",
            {"epochs": 1, "mode": "calibrate"}, data, second, user_id="ann",
        )
    )  # fmt: skip
    assert result["base_version"] == "7"
    assert second.stored[0][3]["tags"]["chimp.base_version"] == "7"


def test_a_cancelled_context_stops_training(tmp_path: Path) -> None:
    data = write_folder_dataset(tmp_path / "ds", 2)
    connector = RecordingConnector()
    context = make_context(
        EmotionRecognitionPlugin, tmp_path, {"epochs": 1}, data, connector,
        cancel_probe=lambda: True,
    )  # fmt: skip
    with pytest.raises(TaskCancelledError):
        EmotionRecognitionPlugin().run(context)
    assert connector.stored == []


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({"epochs": 0}, "epochs"), ({"learning_rate": -1.0}, "learning_rate"),
     ({"validation_split": 1.5}, "validation_split")],
)  # fmt: skip
def test_out_of_range_arguments_fail_clearly(
    tmp_path: Path, arguments: dict[str, Any], match: str
) -> None:
    # The declared bounds refuse these before a task is queued...
    with pytest.raises(ValidationError, match=match):
        EmotionRecognitionPlugin.info.validate_arguments(arguments)
    # ...and run() still refuses them when called with unchecked values.
    data = write_folder_dataset(tmp_path / "ds", 1)
    context = make_context(EmotionRecognitionPlugin, tmp_path, {}, data, RecordingConnector())
    context.arguments.update(arguments)
    with pytest.raises(ValueError, match=match):
        EmotionRecognitionPlugin().run(context)
