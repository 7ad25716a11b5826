"""Prediction monitoring contracts: a version's validation reference and serving's drift report.

Training stores a :class:`PredictionReference` with every classifier version it registers (a
model-version tag, :data:`REFERENCE_TAG`, plus a JSON artifact for people). Serving records what
each version predicts and answers ``GET /monitoring/models/{name}`` with a
:class:`ModelMonitoring`; the web app reads that document through its own backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field, model_validator

REFERENCE_TAG = "chimp.monitoring.reference"
"""Model-version tag holding the version's :class:`PredictionReference` as JSON."""

REFERENCE_ARTIFACT = "monitoring_reference.json"
"""The same reference as a run artifact, next to the confusion matrix."""

CONFIDENCE_BINS = 10
"""Confidence (top score) histograms have this many equal bins over [0, 1]."""

DriftStatus = Literal["ok", "drift", "not enough data", "no reference"]


# Scores arrive as float32: 0.7 is 0.69999999 there and belongs in the 0.7 bin.
_EDGE_TOLERANCE = 1e-6


def confidence_bin(score: float) -> int:
    """The bin of one top score: bin ``i`` holds [i/10, (i+1)/10), the last one includes 1."""
    index = int(min(max(score, 0.0), 1.0) * CONFIDENCE_BINS + _EDGE_TOLERANCE)
    return min(index, CONFIDENCE_BINS - 1)


def confidence_bins(scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Per-bin counts of top scores (see :func:`confidence_bin`)."""
    values = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 0.0, 1.0)
    index = (values * CONFIDENCE_BINS + _EDGE_TOLERANCE).astype(np.int64)
    index = np.minimum(index, CONFIDENCE_BINS - 1)
    return np.bincount(index, minlength=CONFIDENCE_BINS).astype(np.int64)


class PredictionReference(BaseModel):
    """What a version predicted on its own validation split: the baseline for drift."""

    split: str = Field(description="Which data the reference was computed on.")
    count: int = Field(ge=0, description="Predictions in the reference.")
    label_counts: dict[str, int] = Field(description="Predicted label -> how often.")
    confidence_bins: list[int] = Field(
        min_length=CONFIDENCE_BINS,
        max_length=CONFIDENCE_BINS,
        description=f"Top-score histogram, {CONFIDENCE_BINS} equal bins over [0, 1].",
    )

    @model_validator(mode="after")
    def _counts_agree(self) -> PredictionReference:
        if sum(self.label_counts.values()) != self.count or sum(self.confidence_bins) != self.count:
            raise ValueError("label counts and confidence bins must each add up to count")
        return self

    @classmethod
    def from_predictions(
        cls,
        labels: Sequence[str],
        predicted: npt.ArrayLike,
        confidences: npt.ArrayLike,
        *,
        split: str,
    ) -> PredictionReference:
        """From predicted label indices and their top scores (one of each per sample)."""
        index = np.asarray(predicted, dtype=np.int64).ravel()
        counts = np.bincount(index, minlength=len(labels)) if index.size else np.zeros(len(labels))
        bins = confidence_bins(confidences)
        if int(bins.sum()) != index.size:
            raise ValueError("one confidence per prediction")
        return cls(
            split=split,
            count=int(index.size),
            label_counts={label: int(n) for label, n in zip(labels, counts, strict=True)},
            confidence_bins=[int(n) for n in bins],
        )


class LabelTest(BaseModel):
    """Predicted labels against the reference's."""

    test: Literal["chi-squared", "jensen-shannon"] = Field(
        description="chi-squared (homogeneity, p-value) up to the count limit, "
        "Jensen-Shannon distance (base 2) above it."
    )
    statistic: float = Field(description="Chi-squared statistic, or the Jensen-Shannon distance.")
    p_value: float | None = Field(default=None, description="Chi-squared only.")
    threshold: float = Field(description="p-value below, or distance above, this is drift.")
    drift: bool


class ConfidenceTest(BaseModel):
    """Top-score distribution against the reference's: two-sample Kolmogorov-Smirnov."""

    test: Literal["kolmogorov-smirnov"] = "kolmogorov-smirnov"
    statistic: float = Field(description="Largest gap between the two binned CDFs.")
    p_value: float
    threshold: float = Field(description="p-value below this is drift.")
    drift: bool


class VersionDrift(BaseModel):
    """One version over the requested period."""

    version: str
    count: int = Field(description="Predictions of this version in the period.")
    images: int = Field(description="Images it answered in the period (predict-image).")
    faces_per_image: float | None = Field(description="Mean faces per image, when any images.")
    status: DriftStatus
    reason: str = Field(description="Why this status, in words.")
    label_shares: dict[str, float]
    mean_confidence: float | None
    confidence_bins: list[int]
    labels: LabelTest | None = None
    confidence: ConfidenceTest | None = None
    reference: PredictionReference | None = None


class SeriesPoint(BaseModel):
    """One time bucket, summed over the versions asked for."""

    start: datetime
    count: int
    images: int
    label_counts: dict[str, int]
    label_shares: dict[str, float]
    mean_confidence: float | None
    versions: dict[str, int] = Field(description="Predictions per version in this bucket.")


class ModelMonitoring(BaseModel):
    """``GET /monitoring/models/{name}``: the time series and each version's drift status."""

    model: str
    start: datetime = Field(description="Start of the period (inclusive).")
    end: datetime = Field(description="End of the period (exclusive).")
    window_s: int = Field(description="Bucket size of the series, seconds.")
    record_window_s: int = Field(description="Size of the windows serving records, seconds.")
    min_count: int = Field(description="Fewer predictions than this is 'not enough data'.")
    labels: list[str] = Field(description="Every label seen in the period or the references.")
    series: list[SeriesPoint]
    versions: list[VersionDrift]
