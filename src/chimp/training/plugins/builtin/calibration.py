"""Where a training run starts: which network, input and label order, and from which weights.

A calibration fine-tunes the production model when it can: the network defaults to the
production version's (``chimp.architecture`` tag), and the run adopts that version's input spec
and label order so its weights fit. Anything that does not fit (another network asked for,
other labels, colour input) trains from scratch, and the log says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chimp.shared.schemas.models import InputSpec
from chimp.training.plugins.base import ProductionModel
from chimp.training.plugins.builtin.image_data import FER2013_LABELS
from chimp.training.plugins.builtin.networks import (
    DEFAULT_ARCHITECTURE,
    Architecture,
    architecture_of,
    input_spec,
)


@dataclass(frozen=True)
class StartingPoint:
    architecture: Architecture
    spec: InputSpec
    labels: list[str]
    base: ProductionModel | None  # None: from scratch


def native_labels(architecture: Architecture, labels: list[str]) -> list[str]:
    """mini-Xception keeps FER2013's order (that of the pretrained weights)."""
    if architecture == "mini_xception" and sorted(labels) == sorted(FER2013_LABELS):
        return list(FER2013_LABELS)
    return list(labels)


def plan_start(
    requested: Architecture | None,
    size: int,
    labels: list[str],
    production: ProductionModel | None,
    logger: logging.Logger,
) -> StartingPoint:
    """``production`` is the model to calibrate from (None outside calibration)."""

    def scratch(architecture: Architecture, why: str | None) -> StartingPoint:
        if why:
            logger.warning("%s: training from scratch", why)
        return StartingPoint(
            architecture, input_spec(architecture, size), native_labels(architecture, labels), None
        )

    if production is None:
        return scratch(requested or DEFAULT_ARCHITECTURE, None)
    version = production.version
    found = architecture_of(version)
    architecture = requested or found or DEFAULT_ARCHITECTURE
    meta = version.metadata
    if found != architecture:
        why = f"production version {version.version} is {found or 'another network'}"
        return scratch(architecture, f"{why}, not {architecture}")
    if meta is None or sorted(meta.labels) != sorted(labels) or meta.input.channels != 1:
        return scratch(
            architecture, f"production version {version.version} has other labels or input"
        )
    return StartingPoint(architecture, meta.input, list(meta.labels), production)
