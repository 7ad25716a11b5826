"""Model metadata and prediction results.

A registered model version carries a :class:`ModelMetadata` so serving can use it without
guessing: its labels in output order, how to turn an image into its input tensor, its task.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from chimp.shared.schemas.continual import Decision

TaskKind = Literal["face-classification", "image-classification"]

# The emotion labels of CHIMP's demo (the emotion plugin's output order); the web app's
# calibration records them.
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


class InputSpec(BaseModel):
    """How an image becomes the model's input tensor (layout NCHW, float32)."""

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[1, 3] = 1
    color: Literal["gray", "rgb"] = "gray"
    scale: float = 1.0 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])
    input_name: str = "input"
    output_name: str = "logits"


class ModelMetadata(BaseModel):
    task: TaskKind
    labels: list[str] = Field(min_length=1)
    input: InputSpec
    dataset: str | None = None
    plugin: str | None = None
    outputs_probabilities: bool = Field(
        default=False, description="False: outputs are logits and need a softmax."
    )


class ModelRef(BaseModel):
    """Which version answered (or is asked for)."""

    name: str
    version: str
    alias: str | None = None


class ModelVersionInfo(BaseModel):
    name: str
    version: str
    aliases: list[str] = Field(default_factory=list)
    run_id: str | None = None
    metadata: ModelMetadata | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None
    user_id: str | None = Field(
        default=None, description="Set for a personal (calibration) version: whose it is."
    )
    decision: Decision | None = Field(
        default=None, description="The evaluation gate's decision on this version, if any."
    )


class RegisteredModelInfo(BaseModel):
    name: str
    aliases: dict[str, str] = Field(default_factory=dict, description="alias -> version")
    latest_version: str | None = None


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class FacePrediction(BaseModel):
    box: Box | None = Field(default=None, description="None in whole-image mode.")
    scores: dict[str, float]
    label: str
    score: float


class ImagePrediction(BaseModel):
    model: ModelRef
    mode: Literal["faces", "whole"]
    width: int
    height: int
    faces: list[FacePrediction]
