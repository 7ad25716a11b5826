"""Emotion recognition: a compact CNN on grayscale face crops, 7 emotions.

Training data: ``train/<emotion>/*.png|jpg`` (optional ``test/<emotion>/``) or the FER2013 CSV.
Whole webcam frames are cut to the largest face first. ``mode=calibrate`` fine-tunes the current
production model on a user's few frames (or trains from scratch when there is none yet).
Heavy imports (torch) happen in ``run`` so listing plugins stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chimp.shared.schemas import models
from chimp.shared.schemas.models import InputSpec
from chimp.shared.schemas.plugins import PluginArgument, PluginDataset, PluginInfo
from chimp.training.plugins.base import BasePlugin, PluginContext

EMOTIONS = list(models.EMOTIONS)


class EmotionRecognitionPlugin(BasePlugin):
    info = PluginInfo(
        name="emotion_recognition",
        version="1.0.0",
        description=(
            "Trains a compact CNN for 7 emotions on grayscale face crops and registers it as "
            "ONNX. Dataset: train/<emotion>/*.png|jpg (optional test/<emotion>/) or the "
            "FER2013 CSV (emotion,pixels,Usage). mode=calibrate fine-tunes the production "
            "model on a user's frames."
        ),
        arguments=[
            PluginArgument(name="epochs", type="int", optional=True, default=10,
                           description="Passes over the training images."),
            PluginArgument(name="batch_size", type="int", optional=True, default=64,
                           description="Images per optimisation step."),
            PluginArgument(name="learning_rate", type="float", optional=True, default=0.001,
                           description="Adam learning rate."),
            PluginArgument(name="mode", type="str", optional=True, default="train",
                           choices=["train", "calibrate"],
                           description="'calibrate' starts from the production model."),
            PluginArgument(name="model_name", type="str", optional=True, default=None,
                           description="Registered model name (default: CHIMP_MODEL_NAME)."),
            PluginArgument(name="image_size", type="int", optional=True, default=48,
                           choices=[48, 64], description="Side of the square input in pixels."),
            PluginArgument(name="validation_split", type="float", optional=True, default=0.2,
                           description="Share of train held out when there is no test split."),
            PluginArgument(name="seed", type="int", optional=True, default=0,
                           description="Random seed (shuffling, initial weights, split)."),
        ],
        datasets=[
            PluginDataset(name="train", description="Labelled face images or a FER2013 CSV.")
        ],
        model_return_type="onnx",
    )  # fmt: skip

    def run(self, context: PluginContext) -> Mapping[str, Any]:
        from chimp.training.plugins.builtin.pipeline import (
            PipelineConfig,
            fit_from_arguments,
            holdout_fraction,
            run_pipeline,
        )

        args = context.arguments
        size = args["image_size"] or 48
        return run_pipeline(
            context,
            PipelineConfig(
                plugin=self.info.name,
                task="face-classification",
                spec=InputSpec(height=size, width=size, channels=1, color="gray"),
                labels=list(EMOTIONS),
                detect_faces=True,
                accept_fer_csv=True,
                model_name=args["model_name"] or context.default_model_name,
                mode="calibrate" if args["mode"] == "calibrate" else "train",
                fit=fit_from_arguments(args),
                validation_split=holdout_fraction(args["validation_split"]),
            ),
        )
