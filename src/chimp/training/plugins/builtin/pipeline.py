"""The training pipeline both image plugins share.

read the dataset -> hold out a test split -> (calibration: start from the production model)
-> train, logging each epoch's loss and accuracy to the task's MLflow run as it ends ->
evaluate (accuracy, per-class metrics, confusion matrix, curves) -> export ONNX -> check ONNX
against PyTorch -> stage the model with its metadata for registration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from chimp.shared.schemas.models import InputSpec, ModelMetadata, TaskKind
from chimp.shared.vision import FaceDetector
from chimp.training.plugins.base import PluginContext
from chimp.training.plugins.builtin import classifier, reports
from chimp.training.plugins.builtin.image_data import (
    DatasetError,
    LabelledData,
    Split,
    find_csv,
    hash_split,
    load_fer2013_csv,
    load_folders,
    stratified_split,
)
from chimp.training.splits import DATASET_KEY_TAG, HOLDOUT_TAG, TEST_SPLIT, holdout_tag

Mode = Literal["train", "calibrate"]

# Share of the task's progress bar each stage gets.
LOAD_END, TRAIN_END, EXPORT_END = 0.15, 0.85, 0.97


@dataclass
class PipelineConfig:
    plugin: str
    task: TaskKind
    spec: InputSpec
    labels: list[str] | None  # None: from the dataset's folder names
    detect_faces: bool
    accept_fer_csv: bool
    model_name: str
    mode: Mode
    fit: classifier.FitConfig
    validation_split: float
    dataset_key: str = "train"


def _load(context: PluginContext, config: PipelineConfig) -> LabelledData:
    root = context.datasets[config.dataset_key]

    def progress(fraction: float, message: str) -> None:
        context.report_progress(LOAD_END * fraction, message)

    has_folders = (root / "train").is_dir() or any(
        p.is_dir() and not p.name.startswith((".", "__")) for p in root.iterdir()
    )
    csv_path = find_csv(root) if config.accept_fer_csv else None
    if csv_path is not None and config.labels is not None and not (root / "train").is_dir():
        progress(0.0, f"reading {csv_path.name}")
        return load_fer2013_csv(csv_path, config.spec, config.labels)
    if not has_folders:
        raise DatasetError(
            "the dataset holds no train/<label>/ folders"
            + (" and no FER2013 CSV" if config.accept_fer_csv else "")
        )
    detector = FaceDetector() if config.detect_faces else None
    return load_folders(
        root, config.spec, labels=config.labels, detector=detector, progress=progress
    )


def _start_from_production(
    context: PluginContext, config: PipelineConfig, model: classifier.CompactCNN, labels: list[str]
) -> str | None:
    """Load the production model's weights; the version used, or None (train from scratch)."""
    production = context.connector.get_production_model(config.model_name)
    if production is None:
        context.logger.info(
            "no production model of %s: calibrating from scratch", config.model_name
        )
        return None
    meta = production.version.metadata
    if meta is None or meta.labels != labels or meta.input != config.spec:
        context.logger.warning(
            "production version %s has other labels or input: calibrating from scratch",
            production.version.version,
        )
        return None
    try:
        classifier.load_onnx_weights(model, production.onnx_path)
    except ValueError as exc:
        context.logger.warning(
            "cannot fine-tune version %s (%s): from scratch", production.version.version, exc
        )
        return None
    return production.version.version


def run_pipeline(context: PluginContext, config: PipelineConfig) -> dict[str, Any]:
    torch.manual_seed(config.fit.seed)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    data = _load(context, config)
    labels = data.labels
    held_out: Split | None
    holdout: str | None = None  # how the held-out images were chosen, for the evaluation gate
    if data.test is not None:
        train, held_out = data.train, data.test
        holdout = TEST_SPLIT if data.source == "folders" else None
    else:
        # By content hash: an image is held out in every run, so the gate knows what a
        # model never trained on (chimp.training.splits). Too few images for that to hold
        # any out: a seeded stratified split, which the gate cannot rebuild.
        train, held_out = hash_split(data.train, config.validation_split)
        holdout = holdout_tag(config.validation_split) if held_out is not None else None
        if held_out is None:
            train, held_out = stratified_split(data.train, config.validation_split, config.fit.seed)
    context.check_cancelled()

    model = classifier.CompactCNN(config.spec.channels, len(labels))
    base_version = None
    if config.mode == "calibrate":
        base_version = _start_from_production(context, config, model, labels)

    test = held_out if held_out is not None else train
    epochs = config.fit.epochs
    params: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": config.fit.batch_size,
        "learning_rate": config.fit.learning_rate,
        "seed": config.fit.seed,
        "mode": config.mode,
        "train_images": len(train),
        "test_images": len(test),
        "dataset_format": data.source,
        "held_out": "test split"
        if data.test is not None
        else f"{config.validation_split:g} of train",
    }
    if base_version is not None:
        params["base_version"] = base_version
    context.log_params(params)

    def on_batch(epoch: int, done: float, metrics: dict[str, float]) -> None:
        fraction = LOAD_END + (TRAIN_END - LOAD_END) * (epoch + done) / epochs
        context.report_progress(
            fraction, f"epoch {epoch + 1}/{epochs}, loss {metrics['train_loss']:.4f}"
        )

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        context.log_metrics(metrics, step=epoch)

    history = classifier.fit(
        model,
        train,
        held_out,
        config.fit,
        on_batch=on_batch,
        on_epoch=on_epoch,
        check_cancelled=context.check_cancelled,
    )

    context.report_progress(TRAIN_END, "evaluating")
    result = classifier.evaluate(model, test)
    matrix = reports.confusion_matrix(test.targets, result.predictions, len(labels))
    out = context.tmp_dir
    artifacts = [
        reports.draw_confusion_matrix(matrix, labels, out / "confusion_matrix.png"),
        reports.draw_curves(history.values, out / "training_curves.png", config.model_name),
    ]
    context.check_cancelled()

    context.report_progress(0.9, "exporting to ONNX")
    onnx_path = classifier.export_onnx(model, config.spec, out / "model.onnx")
    max_diff = classifier.verify_onnx(model, onnx_path, config.spec, test)
    context.report_progress(EXPORT_END, "storing the model")

    dataset = context.dataset_names.get(config.dataset_key)
    metrics = {
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "onnx_max_abs_diff": max_diff,
        **reports.per_class_metrics(matrix, labels),
    }
    tags: dict[str, str] = {"chimp.mode": config.mode, DATASET_KEY_TAG: config.dataset_key}
    if holdout is not None:
        tags[HOLDOUT_TAG] = holdout
    if base_version is not None:
        tags["chimp.base_version"] = base_version
    metadata = ModelMetadata(
        task=config.task, labels=labels, input=config.spec, dataset=dataset, plugin=config.plugin
    )
    context.connector.store_model(
        config.model_name,
        onnx_path,
        metadata,
        metrics=metrics,  # params and per-epoch curves are already in the run
        artifacts=artifacts,
        tags=tags,
    )
    return {
        "model_name": config.model_name,
        "mode": config.mode,
        "labels": labels,
        "train_images": len(train),
        "test_images": len(test),
        "test_accuracy": result.accuracy,
        "base_version": base_version,
    }


def fit_from_arguments(args: Mapping[str, Any]) -> classifier.FitConfig:
    """The common training arguments, refusing non-positive sizes and rates."""
    values = {
        "epochs": args.get("epochs") or 10,
        "batch_size": args.get("batch_size") or 64,
        "learning_rate": args.get("learning_rate") or 1e-3,
    }
    for name in ("epochs", "batch_size", "learning_rate"):
        given = args.get(name)
        if given is not None and given <= 0:
            raise ValueError(f"{name} must be positive, got {given}")
    return classifier.FitConfig(
        epochs=int(values["epochs"]),
        batch_size=int(values["batch_size"]),
        learning_rate=float(values["learning_rate"]),
        seed=int(args.get("seed") or 0),
    )


def holdout_fraction(value: float | None, default: float = 0.2) -> float:
    if value is None:
        return default
    if not 0.0 <= value < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {value}")
    return value
