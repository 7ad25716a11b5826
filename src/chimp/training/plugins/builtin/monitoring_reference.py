"""A classifier version's monitoring reference: what it predicts on its own held-out data.

Serving compares the labels and confidences each version predicts in production with this
reference to flag drift (docs/monitoring.md). It is stored with the version as a model-version
tag (serving reads it from the registry with the version's metadata) and as a JSON artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from chimp.shared.schemas.monitoring import REFERENCE_ARTIFACT, REFERENCE_TAG, PredictionReference

# MLflow limits run tag values to 8,000 characters (version tags allow more); the tag goes on
# both. A reference of hundreds of labels is still stored, as the artifact only.
TAG_LIMIT = 8000


def store_reference(
    labels: Sequence[str],
    predicted: npt.NDArray[np.int64],
    confidences: npt.NDArray[np.float32],
    *,
    split: str,
    folder: Path,
) -> tuple[dict[str, str], Path]:
    """The tags and the artifact file that carry the reference of ``predicted``."""
    reference = PredictionReference.from_predictions(labels, predicted, confidences, split=split)
    path = folder / REFERENCE_ARTIFACT
    path.write_text(reference.model_dump_json(indent=2), encoding="utf-8")
    compact = reference.model_dump_json()
    return ({REFERENCE_TAG: compact} if len(compact) <= TAG_LIMIT else {}), path
