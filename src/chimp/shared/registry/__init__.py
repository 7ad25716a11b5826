"""MLflow registry adapter.

``ModelRegistry`` (:mod:`.sync`) is synchronous (it wraps ``MlflowClient``) and is what a training
subprocess uses. ``AsyncModelRegistry`` (:mod:`.asynchronous`) wraps it for services: every call
runs in a worker thread behind a capacity limiter, so MLflow's sync client never blocks the
event loop. :mod:`.layout` describes what CHIMP writes into MLflow, :mod:`.names` the aliases
(``production``, ``staging``, ``user-<id>``) and :mod:`.mlflow_errors` how MLflow's exceptions
become CHIMP errors.
"""

from __future__ import annotations

from chimp.shared.registry.asynchronous import AsyncModelRegistry
from chimp.shared.registry.layout import (
    METADATA_FILE,
    MODEL_DIR,
    ONNX_FILE,
    TAG_DATASET,
    TAG_METADATA,
    TAG_PLUGIN,
    TAG_TASK,
    ArtifactFile,
    check_onnx_matches,
)
from chimp.shared.registry.names import (
    PRODUCTION,
    SHARED_ALIASES,
    STAGING,
    USER_ALIAS_PREFIX,
    check_chimp_alias,
    is_user_alias,
    user_alias,
    validate_alias,
)
from chimp.shared.registry.sync import ModelRegistry, RunStatus

__all__ = [
    "METADATA_FILE",
    "MODEL_DIR",
    "ONNX_FILE",
    "PRODUCTION",
    "SHARED_ALIASES",
    "STAGING",
    "TAG_DATASET",
    "TAG_METADATA",
    "TAG_PLUGIN",
    "TAG_TASK",
    "USER_ALIAS_PREFIX",
    "ArtifactFile",
    "AsyncModelRegistry",
    "ModelRegistry",
    "RunStatus",
    "check_chimp_alias",
    "check_onnx_matches",
    "is_user_alias",
    "user_alias",
    "validate_alias",
]
