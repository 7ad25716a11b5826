"""The personal gate: a re-calibrated personal model replaces its user's current one only if it
is better for that user and has not forgotten the shared task.

- **Own frames**: both models are scored on the user's held-out frames, the calibration frames
  and corrections neither trained on (content-hash hold-out, the same in every run; replay
  images are not the user's and do not count). The candidate must be better there, or equal
  there and better on the shared data.
- **Forgetting bound**: on shared evaluation data (the policy's ``evaluation_dataset``, else
  the production version's recorded held-out set) the candidate may lose at most
  ``forgetting_bound`` accuracy against the current personal model.
- No current personal model: the candidate is the user's first (verdict ``first``).

The decision is a :class:`~chimp.shared.schemas.continual.Decision` kept with the candidate (tag
and ``evaluation/decision.json``), and a replacement is recorded in the history. A rejected
candidate keeps no alias: the user keeps the model they have. Synchronous: call from a thread.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from chimp.shared.registry import PRODUCTION, ModelRegistry, user_alias
from chimp.shared.schemas.continual import Decision, MetricComparison, PromotionPolicy, Verdict
from chimp.shared.schemas.models import ModelVersionInfo
from chimp.shared.vision import read_image
from chimp.training.evaluation import (
    EvaluationItem,
    EvaluationSet,
    score,
)
from chimp.training.gate import keep_evidence, recorded_set
from chimp.training.history import move_alias
from chimp.training.personal import label_files, user_image
from chimp.training.records import ModelRecords
from chimp.training.splits import image_hash, is_held_out, parse_holdout

logger = logging.getLogger(__name__)

ACTOR = "personal-gate"
USER_METRIC = "user_accuracy"
SHARED_METRIC = "shared_accuracy"


def user_held_out(root: Path, holdout: str | None, user_id: str) -> EvaluationSet:
    """The user's own frames in an assembled folder that the candidate held out."""
    fraction = parse_holdout(holdout)
    items = []
    if fraction is not None:
        for label, path in label_files(root):
            if not user_image(path):
                continue
            image = read_image(path)
            digest = image_hash(image)
            if is_held_out(digest, fraction):
                items.append(EvaluationItem(digest, label, image))
    return EvaluationSet(f"held-out frames of {user_id}", items)


def shared_set(
    registry: ModelRegistry, model: str, dataset: EvaluationSet | None, work: Path
) -> EvaluationSet | None:
    """Shared evaluation data: the policy's dataset, else production's recorded set."""
    if dataset is not None and len(dataset):
        return dataset
    production = registry.aliases(model).get(PRODUCTION)
    if production is None:
        return None
    recorded = recorded_set(registry, model, production, work)
    return recorded if len(recorded) else None


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def decide(
    user: tuple[float, float] | None, shared: tuple[float, float] | None, bound: float
) -> tuple[Verdict, str]:
    """``(candidate, current)`` accuracies on the user's frames and on shared data."""
    if user is None:
        return "rejected", "no held-out frames of the user to compare on"
    cand, base = user
    versus = f"{USER_METRIC} {_fmt(cand)} vs {_fmt(base)} on the user's held-out frames"
    if shared is not None:
        lost = shared[1] - shared[0]
        forgetting = f"{SHARED_METRIC} {_fmt(shared[0])} vs {_fmt(shared[1])}"
        if lost > bound:
            return "rejected", f"{forgetting}: forgets {_fmt(lost)}, more than {_fmt(bound)}"
    if cand < base:
        return "rejected", f"{versus}: worse"
    if cand == base:
        if shared is not None and shared[0] > shared[1]:
            return "promoted", f"{versus}: equal, and better on shared data ({forgetting})"
        return "rejected", f"{versus}: not better (equal)"
    tail = f"; {forgetting}" if shared is not None else "; no shared data to check forgetting"
    return "promoted", f"{versus}: {_fmt(cand - base)} better{tail}"


def _accuracy(onnx_path: Path, info: ModelVersionInfo, data: EvaluationSet) -> float:
    assert info.metadata is not None
    return score(onnx_path, info.metadata, data)["accuracy"]


def personal_gate(
    registry: ModelRegistry,
    records: ModelRecords,
    model: str,
    version: str,
    user_id: str,
    *,
    personal_root: Path | None,
    shared_dataset: EvaluationSet | None,
    forgetting_bound: float,
    policy: PromotionPolicy,
    task_id: str | None = None,
    work_dir: Path | None = None,
) -> Decision:
    """Decide whether ``version`` replaces ``user-<id>``; moves the alias when it does."""
    alias = user_alias(user_id)
    with tempfile.TemporaryDirectory(prefix="chimp-personal-gate-", dir=work_dir) as tmp:
        work = Path(tmp)
        info = registry.get_version(model, version)
        current = registry.aliases(model).get(alias)
        current = None if current == version else current
        compared: dict[str, MetricComparison] = {}
        data: EvaluationSet | None = None
        verdict: Verdict
        if current is None:
            verdict, reason = "first", f"the first personal model of {user_id}"
        elif info.metadata is None:
            verdict, reason = "rejected", "the version has no CHIMP metadata: it cannot be scored"
        else:
            baseline = registry.get_version(model, current)
            own = (
                user_held_out(personal_root, info.tags.get("chimp.holdout"), user_id)
                if (personal_root is not None)
                else EvaluationSet(f"held-out frames of {user_id}", [])
            )
            user_scores = shared_scores = None
            if len(own):
                data = own
                # Each version is downloaded once and scored on both sets.
                onnx = {
                    v.version: registry.download_onnx(v.name, v.version, work / f"v{v.version}")
                    for v in (info, baseline)
                }
                user_scores = (
                    _accuracy(onnx[info.version], info, own),
                    _accuracy(onnx[baseline.version], baseline, own),
                )
                compared[USER_METRIC] = MetricComparison(
                    metric=USER_METRIC, candidate=user_scores[0], baseline=user_scores[1]
                )
                shared = shared_set(registry, model, shared_dataset, work)
                if shared is not None:
                    shared_scores = (
                        _accuracy(onnx[info.version], info, shared),
                        _accuracy(onnx[baseline.version], baseline, shared),
                    )
                    compared[SHARED_METRIC] = MetricComparison(
                        metric=SHARED_METRIC,
                        candidate=shared_scores[0],
                        baseline=shared_scores[1],
                    )
            verdict, reason = decide(user_scores, shared_scores, forgetting_bound)
        decision = Decision(
            model=model,
            verdict=verdict,
            reason=reason,
            candidate_version=version,
            baseline_version=current,
            metrics=compared,
            evaluation=data.ref() if data is not None else None,
            policy=policy,
            thresholds={"forgetting_bound": forgetting_bound},
            task_id=task_id,
            at=datetime.now(UTC),
        )
        if verdict in ("promoted", "first"):
            move_alias(
                registry,
                records,
                model,
                alias,
                version,
                kind="calibration",
                actor=ACTOR,
                reason=f"{verdict}: {reason}",
                decision=version,
                task_id=task_id,
            )
        keep_evidence(registry, info, decision, None, work)
    logger.info("personal gate on %s v%s for %s: %s (%s)", model, version, user_id, verdict,
                reason)  # fmt: skip
    return decision
