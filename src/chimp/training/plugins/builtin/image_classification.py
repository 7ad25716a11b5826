"""Image classification: the emotion pipeline for any ``train/<class>/*`` image folders.

Labels are the folder names (sorted); images are RGB, resized to a square input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chimp.shared.schemas.models import InputSpec
from chimp.shared.schemas.plugins import PluginArgument, PluginDataset, PluginInfo
from chimp.training.plugins.base import BasePlugin, PluginContext


class ImageClassificationPlugin(BasePlugin):
    info = PluginInfo(
        name="image_classification",
        version="1.0.0",
        description=(
            "Trains a compact CNN on train/<class>/* image folders (labels = folder names, "
            "optional test/<class>/) and registers it as ONNX."
        ),
        arguments=[
            PluginArgument(name="model_name", type="str",
                           description="Registered model name for this classifier."),
            PluginArgument(name="epochs", type="int", optional=True, default=10, ge=1,
                           description="Passes over the training images."),
            PluginArgument(name="batch_size", type="int", optional=True, default=64, ge=1,
                           description="Images per optimisation step."),
            PluginArgument(name="learning_rate", type="float", optional=True, default=0.001,
                           gt=0, description="Adam learning rate."),
            PluginArgument(name="image_size", type="int", optional=True, default=64,
                           choices=[32, 48, 64, 96], description="Side of the square input."),
            PluginArgument(name="validation_split", type="float", optional=True, default=0.2,
                           gt=0, lt=1,
                           description="Share of train held out when there is no test split."),
            PluginArgument(name="seed", type="int", optional=True, default=0, ge=0,
                           description="Random seed."),
        ],
        datasets=[PluginDataset(name="train", description="train/<class>/ image folders.")],
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
        size = args["image_size"] or 64
        return run_pipeline(
            context,
            PipelineConfig(
                plugin=self.info.name,
                task="image-classification",
                spec=InputSpec(
                    height=size,
                    width=size,
                    channels=3,
                    color="rgb",
                    mean=[0.0, 0.0, 0.0],
                    std=[1.0, 1.0, 1.0],
                ),
                labels=None,
                detect_faces=False,
                accept_fer_csv=False,
                model_name=args["model_name"],
                mode="train",
                fit=fit_from_arguments(args),
                validation_split=holdout_fraction(args["validation_split"]),
            ),
        )
