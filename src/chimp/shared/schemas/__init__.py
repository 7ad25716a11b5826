"""Typed contracts that cross process boundaries (HTTP bodies, arq jobs, registry metadata)."""

from chimp.shared.schemas.base import ErrorBody, StrictModel
from chimp.shared.schemas.datasets import DatasetEntry, DatasetInfo, DatasetManifest
from chimp.shared.schemas.models import (
    Box,
    FacePrediction,
    ImagePrediction,
    InputSpec,
    ModelMetadata,
    ModelRef,
    ModelVersionInfo,
    RegisteredModelInfo,
)
from chimp.shared.schemas.plugins import ArgumentType, PluginArgument, PluginDataset, PluginInfo
from chimp.shared.schemas.tasks import TaskInfo, TaskPoll, TaskRunRequest, TaskStatus

__all__ = [
    "ArgumentType",
    "Box",
    "DatasetEntry",
    "DatasetInfo",
    "DatasetManifest",
    "ErrorBody",
    "FacePrediction",
    "ImagePrediction",
    "InputSpec",
    "ModelMetadata",
    "ModelRef",
    "ModelVersionInfo",
    "PluginArgument",
    "PluginDataset",
    "PluginInfo",
    "RegisteredModelInfo",
    "StrictModel",
    "TaskInfo",
    "TaskPoll",
    "TaskRunRequest",
    "TaskStatus",
]
