"""Contracts of the continual loop: promotion policy, gate decisions, alias history, rollback.

The training service owns every rule; these models are what its API says about them, and what
the web app and CLI read. See ``docs/continual.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from chimp.shared.schemas.base import StrictModel

Verdict = Literal["promoted", "rejected", "first"]

# Why an alias moved: the gate's verdicts, a person's forced move, a rollback, a calibration
# run, a move noticed in MLflow that CHIMP did not make, or an alias removed.
MoveKind = Literal["gate", "forced", "manual", "rollback", "calibration", "external", "removed"]

DEFAULT_METRIC = "accuracy"
DEFAULT_MIN_IMPROVEMENT = 0.01


class PromotionPolicy(StrictModel):
    """How a candidate earns ``production``; ``PUT /models/{name}/policy`` takes this body."""

    metric: str = Field(
        default=DEFAULT_METRIC,
        description="Metric compared on the evaluation data: accuracy, macro_f1, "
        "precision_<label>, recall_<label> or f1_<label>; higher is better.",
    )
    min_value: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Floor the candidate must reach; default: chance (1/labels) plus "
        "min_improvement.",
    )
    min_improvement: float = Field(
        default=DEFAULT_MIN_IMPROVEMENT,
        ge=0.0,
        le=1.0,
        description="How much the candidate must beat the champion by (absolute). Equality "
        "never promotes.",
    )
    min_label_recall: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Optional recall floor for every label."
    )
    evaluation_dataset: str | None = Field(
        default=None,
        description="A stored dataset (training layout) whose images are all used for "
        "evaluation; default: the champion's recorded held-out data.",
    )


class PolicyInfo(PromotionPolicy):
    """The policy as it applies to a model: stored fields plus what they mean in practice."""

    model: str
    gated: bool = Field(
        default=True, description="False when the model's plugin declares it not comparable."
    )
    effective_min_value: float | None = Field(
        default=None, description="min_value, or its default for the model's labels."
    )
    summary: str = Field(description="What happens to the next candidate, in words.")
    updated_at: datetime | None = None
    updated_by: str | None = None


class EvaluationDataRef(BaseModel):
    """Which images a decision was made on."""

    name: str = Field(description="A dataset name, or where the data came from.")
    content_hash: str = Field(description="sha256 over the images' content hashes and labels.")
    images: int


class MetricComparison(BaseModel):
    metric: str
    candidate: float
    baseline: float | None = None


class Decision(BaseModel):
    """The gate's verdict on one candidate version, with its evidence."""

    model: str
    verdict: Verdict
    reason: str
    candidate_version: str
    baseline_version: str | None = None
    metrics: dict[str, MetricComparison] = Field(
        default_factory=dict, description="Each compared metric, candidate vs baseline."
    )
    evaluation: EvaluationDataRef | None = None
    policy: PromotionPolicy
    thresholds: dict[str, float] = Field(default_factory=dict)
    task_id: str | None = None
    at: datetime


class HistoryEntry(BaseModel):
    """One alias move. The history is append-only: entries are never edited or removed."""

    id: str
    model: str
    alias: str
    from_version: str | None = None
    to_version: str | None = Field(default=None, description="None: the alias was removed.")
    kind: MoveKind
    actor: str = Field(description="gate, token, user:<name>, external, or task:<id>.")
    reason: str
    decision: str | None = Field(
        default=None, description="The candidate version whose decision caused the move."
    )
    task_id: str | None = None
    at: datetime


class HistoryPage(BaseModel):
    model: str
    entries: list[HistoryEntry] = Field(description="Newest first.")
    total: int
    offset: int
    limit: int


class RollbackResult(BaseModel):
    alias: str
    version: str
    previous: str
