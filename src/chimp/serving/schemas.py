"""Request and response bodies of the serving API.

The ``V2*`` models follow the Open Inference Protocol (KServe V2) REST spec field for field, so
standard v2 clients work unchanged. Tensor ``data`` may be flat (row-major) or nested exactly as
``shape`` (checked by :mod:`chimp.serving.tensors`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from chimp.shared.schemas.base import StrictModel
from chimp.shared.schemas.models import InputSpec, ModelRef, TaskKind

ParameterValue = bool | int | float | str


# -- Open Inference Protocol ------------------------------------------------------------------


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 marks a variable dimension (the batch).")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(default_factory=list)
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="CHIMP extras: labels, task, the answering version."
    )


class V2RequestInput(StrictModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, ParameterValue] | None = Field(
        default=None,
        description="binary_data_size: the tensor's bytes follow the JSON header in the body "
        "(binary tensor extension) instead of data.",
    )
    data: list[Any] | None = Field(
        default=None, description="Flat (row-major) or nested as shape; absent for binary data."
    )


class V2RequestOutput(StrictModel):
    name: str
    parameters: dict[str, ParameterValue] | None = Field(
        default=None, description="binary_data: true to get this output as binary data."
    )


class V2InferenceRequest(StrictModel):
    id: str | None = None
    parameters: dict[str, ParameterValue] | None = Field(
        default=None,
        description="binary_data_output: true to get every output as binary data by default.",
    )
    inputs: list[V2RequestInput] = Field(min_length=1)
    outputs: list[V2RequestOutput] | None = None


class V2ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, ParameterValue] | None = Field(
        default=None, description="binary_data_size when the data follows the JSON header."
    )
    data: list[Any] | None = None


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, ParameterValue] | None = None
    outputs: list[V2ResponseOutput]


# -- what is served ---------------------------------------------------------------------------


class LoadedVersion(BaseModel):
    version: str
    chimp_metadata: bool = Field(
        description="Whether the version carries CHIMP metadata (labels, input spec). Without "
        "it the version is served over the Open Inference Protocol from its ONNX graph only; "
        "predict-image and the original endpoints need it."
    )
    task: TaskKind | None = None
    labels: list[str] | None = None
    input: InputSpec | None = None
    providers: list[str]
    batching: bool
    loaded_at: float = Field(description="Unix time the version became ready.")


class ServedModel(BaseModel):
    name: str
    aliases: dict[str, str] = Field(description="alias -> version serving it in this process")
    registry_aliases: dict[str, str] = Field(
        description="alias -> version in the registry at the last poll (may be ahead while "
        "a new version loads)"
    )
    loaded: list[LoadedVersion]


class RegistryStatus(BaseModel):
    ok: bool | None = Field(description="None until the first poll finished.")
    error: str | None = None


class ServedModels(BaseModel):
    models: list[ServedModel]
    registry: RegistryStatus


class ReloadReport(BaseModel):
    registry_ok: bool
    changes: list[str]
    errors: list[str]


# -- the original system's endpoints ----------------------------------------------------------


class LegacyModelInfo(BaseModel):
    model: ModelRef
    task: TaskKind
    labels: list[str]
    input: InputSpec
    input_shape: list[int] = Field(description="Shape of one input: [channels, height, width].")


class LegacyInferRequest(StrictModel):
    inputs: list[Any] = Field(
        description="Preprocessed float inputs: one [C, H, W] array, or a batch [N, C, H, W], "
        "as nested lists (see the model's input spec from GET /model)."
    )


class LegacyPrediction(BaseModel):
    label: str
    score: float
    scores: dict[str, float]


class LegacyInferResponse(BaseModel):
    model: ModelRef
    labels: list[str]
    outputs: list[list[float]] = Field(description="Per input, the model's probabilities.")
    predictions: list[LegacyPrediction]


PredictMode = Literal["faces", "whole"]
