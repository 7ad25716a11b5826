"""The evaluation gate: a registered candidate version earns ``production`` or lands in staging.

:func:`gate_version` scores the candidate and the champion (the ``production`` version) on the
same evaluation data through the same ONNX Runtime path serving uses, decides with the model's
policy, moves the alias (recorded in the history), and keeps the evidence with the candidate:
the version tag ``chimp.decision`` and the run artifact ``evaluation/decision.json``.
:func:`register_and_gate` registers a model file first: the one call for anything that brings
a new shared version (a training task, an import, a pretrained model).

Which data (see docs/continual.md):

1. the policy's ``evaluation_dataset``, all its images, when it names one;
2. else the champion's recorded evaluation set (the held-out data it was gated on, plus its own
   held-out split), minus any image the candidate trained on: data neither model trained on,
   with the labels that earned the champion production, so a candidate trained on relabelled
   (e.g. permuted) data cannot win with its own labels;
3. else (no champion, or a champion with no recorded set, such as a pretrained model) the
   candidate's own held-out split.

Every candidate records the set it was judged on merged with its own held-out split, which is
what a later candidate faces if this one is promoted. Synchronous: call from a worker thread.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import PRODUCTION, STAGING, ModelRegistry
from chimp.shared.registry.layout import TAG_DECISION
from chimp.shared.schemas.continual import (
    Decision,
    EvaluationDataRef,
    MetricComparison,
    PromotionPolicy,
    Verdict,
)
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo
from chimp.training.evaluation import (
    EVALUATION_ARTIFACT,
    CandidateData,
    EvaluationSet,
    read_set,
    score,
    write_set,
)
from chimp.training.history import move_alias
from chimp.training.policy import effective_min_value, get_policy
from chimp.training.records import ModelRecords

logger = logging.getLogger(__name__)

DECISION_TAG = TAG_DECISION
VERDICT_TAG = "chimp.decision.verdict"
REASON_TAG = "chimp.decision.reason"
DECISION_ARTIFACT = "evaluation/decision.json"
GATE_ACTOR = "gate"


@dataclass
class Scores:
    candidate: dict[str, float]
    baseline: dict[str, float] | None


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"


def decide(
    policy: PromotionPolicy,
    floor: float | None,
    scores: Scores,
    data: str,
) -> tuple[Verdict, str, dict[str, MetricComparison]]:
    """The verdict and reason for scored models (``scores.baseline`` None: no champion)."""
    metric = policy.metric
    cand = scores.candidate.get(metric, 0.0)
    base = scores.baseline.get(metric) if scores.baseline is not None else None
    compared = {metric: MetricComparison(metric=metric, candidate=cand, baseline=base)}
    problems: list[str] = []
    if floor is not None and cand < floor:
        problems.append(f"{metric} {_fmt(cand)} on {data} is below the floor {_fmt(floor)}")
    if policy.min_label_recall is not None:
        for key, value in sorted(scores.candidate.items()):
            if not key.startswith("recall_"):
                continue
            other = scores.baseline.get(key) if scores.baseline is not None else None
            compared[key] = MetricComparison(metric=key, candidate=value, baseline=other)
            if value < policy.min_label_recall:
                problems.append(
                    f"{key} {_fmt(value)} is below the floor {_fmt(policy.min_label_recall)}"
                )
    if base is None:
        if problems:
            return "rejected", "first version not promoted: " + "; ".join(problems), compared
        return "first", f"first version: {metric} {_fmt(cand)} on {data}", compared
    diff = cand - base
    versus = f"{metric} {_fmt(cand)} vs {_fmt(base)} on {data}"
    if diff < 0:
        problems.insert(0, f"{versus}: {_fmt(-diff)} worse")
    elif diff == 0:
        problems.insert(0, f"{versus}: not better (equal)")
    elif diff < policy.min_improvement:
        problems.insert(0, f"{versus}: {_fmt(diff)} better, needs {_fmt(policy.min_improvement)}")
    if problems:
        return "rejected", "; ".join(problems), compared
    return "promoted", f"{versus}: {_fmt(diff)} better", compared


def recorded_set(registry: ModelRegistry, model: str, version: str, work: Path) -> EvaluationSet:
    try:
        path = registry.download_version_artifact(model, version, EVALUATION_ARTIFACT, work)
    except NotFoundError:
        return EvaluationSet(f"held-out data of version {version}", [])
    return read_set(path, f"held-out data of version {version}")


def choose_data(
    registry: ModelRegistry,
    model: str,
    champion: str | None,
    candidate: CandidateData | None,
    dataset: EvaluationSet | None,
    work: Path,
) -> EvaluationSet | None:
    """The data to judge on (see the module's docstring), or None when there is none."""
    if dataset is not None:
        return dataset
    if champion is not None:
        recorded = recorded_set(registry, model, champion, work)
        trained = candidate.trained if candidate is not None else set()
        fresh = recorded.without(trained)
        if len(fresh):
            return fresh
    if candidate is not None and len(candidate.held_out):
        return candidate.held_out
    return None


def _score_version(
    registry: ModelRegistry, info: ModelVersionInfo, data: EvaluationSet, work: Path
) -> dict[str, float]:
    assert info.metadata is not None
    folder = work / f"v{info.version}"
    onnx_path = registry.download_onnx(info.name, info.version, folder)
    return score(onnx_path, info.metadata, data)


def keep_evidence(
    registry: ModelRegistry,
    info: ModelVersionInfo,
    decision: Decision,
    recorded: EvaluationSet | None,
    work: Path,
) -> None:
    registry.set_version_tags(
        info.name,
        info.version,
        {
            DECISION_TAG: decision.model_dump_json(),
            VERDICT_TAG: decision.verdict,
            REASON_TAG: decision.reason[:4900],
        },
    )
    if info.run_id is None:
        return
    folder = work / "evidence"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "decision.json").write_text(decision.model_dump_json(indent=2))
    files = [folder / "decision.json"]
    if recorded is not None and len(recorded):
        files.append(write_set(recorded, folder / "evaluation-set.zip"))
    registry.log_artifacts(info.run_id, files, artifact_path="evaluation")


def gate_version(
    registry: ModelRegistry,
    records: ModelRecords,
    model: str,
    version: str,
    *,
    policy: PromotionPolicy | None = None,
    comparable: bool = True,
    candidate: CandidateData | None = None,
    evaluation_dataset: EvaluationSet | None = None,
    promote: bool = True,
    task_id: str | None = None,
    work_dir: Path | None = None,
) -> Decision:
    """Decide on ``version`` of ``model``, move ``production`` or ``staging``, keep evidence.

    ``candidate`` is what the version trained on and held out (None when unknown, e.g. an
    imported model); ``evaluation_dataset`` the policy's dataset, already read;
    ``promote=False`` records the verdict but never moves ``production`` past a champion.
    """
    policy = policy if policy is not None else get_policy(records, model)
    with tempfile.TemporaryDirectory(prefix="chimp-gate-", dir=work_dir) as tmp:
        work = Path(tmp)
        info = registry.get_version(model, version)
        champion_version = registry.aliases(model).get(PRODUCTION)
        if champion_version == version:
            champion_version = None
        champion = registry.get_version(model, champion_version) if champion_version else None
        labels = info.metadata.labels if info.metadata is not None else None
        floor = effective_min_value(policy, labels)
        data = choose_data(registry, model, champion_version, candidate, evaluation_dataset, work)
        verdict: Verdict
        compared: dict[str, MetricComparison] = {}
        thresholds = {"min_improvement": policy.min_improvement}
        if floor is not None:
            thresholds["min_value"] = floor
        if policy.min_label_recall is not None:
            thresholds["min_label_recall"] = policy.min_label_recall
        if info.metadata is None:
            verdict, reason = "rejected", "the version has no CHIMP metadata: it cannot be scored"
            data = None
        elif not comparable:
            plugin = info.metadata.plugin or "its plugin"
            data = None
            if champion is None:
                verdict, reason = "first", f"first version ({plugin} models are not compared)"
            else:
                verdict, reason = (
                    "rejected",
                    f"not compared: {plugin} declares its models not comparable; promote by hand",
                )
        elif data is None:
            if champion is None:
                verdict = "first"
                reason = "first version: no evaluation data, promoted without a score"
            else:
                verdict = "rejected"
                reason = (
                    f"no evaluation data to compare with production version {champion_version}"
                    ": set the policy's evaluation_dataset"
                )
        else:
            baseline = None
            if champion is not None and champion.metadata is not None:
                baseline = _score_version(registry, champion, data, work)
            elif champion is not None:
                baseline = {}
            scores = Scores(_score_version(registry, info, data, work), baseline)
            verdict, reason, compared = decide(policy, floor, scores, data.name)
        if verdict == "promoted" and not promote:
            verdict = "rejected"
            reason = f"passed the gate but the run asked not to promote: {reason}"
        decision = Decision(
            model=model,
            verdict=verdict,
            reason=reason,
            candidate_version=version,
            baseline_version=champion_version,
            metrics=compared,
            evaluation=data.ref() if data is not None else None,
            policy=policy,
            thresholds=thresholds,
            task_id=task_id,
            at=datetime.now(UTC),
        )
        alias = PRODUCTION if verdict in ("promoted", "first") else STAGING
        move_alias(
            registry,
            records,
            model,
            alias,
            version,
            kind="gate",
            actor=GATE_ACTOR,
            reason=f"{verdict}: {reason}",
            decision=version,
            task_id=task_id,
        )
        to_record = data
        if candidate is not None and len(candidate.held_out):
            base = data if data is not None else EvaluationSet("", [])
            to_record = base.merged(candidate.held_out, f"held-out data of version {version}")
        keep_evidence(registry, info, decision, to_record, work)
    logger.info("gate on %s version %s: %s (%s)", model, version, verdict, reason)
    return decision


def register_and_gate(
    registry: ModelRegistry,
    records: ModelRecords,
    model: str,
    onnx_path: Path,
    metadata: ModelMetadata,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    artifacts: list[Path] | None = None,
    tags: Mapping[str, str] | None = None,
    **gate: Any,
) -> tuple[ModelVersionInfo, Decision]:
    """Register ``onnx_path`` as a new version of ``model``, then :func:`gate_version` it.

    ``gate`` takes :func:`gate_version`'s keyword arguments (policy, candidate, ...).
    """
    info = registry.log_model_version(
        model,
        onnx_path,
        metadata,
        params=dict(params or {}),
        metrics=dict(metrics or {}),
        artifacts=artifacts,
        tags=dict(tags or {}),
    )
    decision = gate_version(registry, records, model, info.version, **gate)
    return registry.get_version(model, info.version), decision


__all__ = [
    "DECISION_TAG",
    "EvaluationDataRef",
    "decide",
    "gate_version",
    "register_and_gate",
]
