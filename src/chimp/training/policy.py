"""The promotion policy of a model name: stored, checked, and said in words.

Each ``PUT /models/{name}/policy`` appends a version of the policy to the model's records in
MLflow (:mod:`chimp.training.records`); the newest one applies. A model with none uses
:class:`PromotionPolicy`'s defaults. Synchronous (MLflow's client): call from a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from chimp.shared.errors import NotFoundError, ValidationFailedError
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.continual import PolicyInfo, PromotionPolicy
from chimp.shared.schemas.models import ModelVersionInfo
from chimp.training.evaluation import GENERIC_METRICS, PER_LABEL_METRICS, metric_names
from chimp.training.records import ModelRecords

KIND = "policy"
_PER_LABEL = re.compile(rf"^({'|'.join(PER_LABEL_METRICS)})_.+$")


class StoredPolicy(BaseModel):
    policy: PromotionPolicy
    by: str
    at: datetime


def read_policy(records: ModelRecords, model: str) -> StoredPolicy | None:
    """The newest stored policy of ``model``, or None (the defaults apply)."""
    for record in reversed(records.read(model, KIND)):
        try:
            return StoredPolicy.model_validate_json(record.value)
        except ValidationError:
            continue
    return None


def get_policy(records: ModelRecords, model: str) -> PromotionPolicy:
    stored = read_policy(records, model)
    return stored.policy if stored is not None else PromotionPolicy()


def save_policy(
    records: ModelRecords, model: str, policy: PromotionPolicy, *, actor: str
) -> StoredPolicy:
    stored = StoredPolicy(policy=policy, by=actor, at=datetime.now(UTC))
    records.append(model, KIND, stored.model_dump_json())
    return stored


def check_policy(
    policy: PromotionPolicy,
    *,
    labels: Sequence[str] | None,
    stored_datasets: set[str],
) -> None:
    """:class:`ValidationFailedError` (422) naming an unknown metric or dataset.

    ``labels`` are the model's labels when it has versions (per-label metrics must name one).
    """
    problems: list[dict[str, Any]] = []
    known = metric_names(labels) if labels is not None else None
    metric = policy.metric
    if known is not None and metric not in known:
        problems.append(
            {"loc": ["metric"], "msg": f"unknown metric '{metric}': use one of {known}"}
        )
    elif known is None and metric not in GENERIC_METRICS and not _PER_LABEL.match(metric):
        problems.append(
            {
                "loc": ["metric"],
                "msg": f"unknown metric '{metric}': use accuracy, macro_f1, "
                "precision_<label>, recall_<label> or f1_<label>",
            }
        )
    dataset = policy.evaluation_dataset
    if dataset is not None and dataset not in stored_datasets:
        problems.append(
            {"loc": ["evaluation_dataset"], "msg": f"no stored dataset named '{dataset}'"}
        )
    if problems:
        names = ", ".join(f"{p['loc'][0]}: {p['msg']}" for p in problems)
        raise ValidationFailedError(f"invalid policy: {names}", detail=problems)


def effective_min_value(policy: PromotionPolicy, labels: Sequence[str] | None) -> float | None:
    """``min_value``, or better than chance (1/labels) by ``min_improvement``."""
    if policy.min_value is not None:
        return policy.min_value
    if not labels:
        return None
    return round(1.0 / len(labels) + policy.min_improvement, 6)


def reference_version(registry: ModelRegistry, model: str) -> ModelVersionInfo | None:
    """The version whose labels and plugin describe the model: production, else the newest."""
    try:
        aliases = registry.aliases(model)
    except NotFoundError:
        return None
    if PRODUCTION in aliases:
        return registry.get_version(model, aliases[PRODUCTION])
    versions = registry.list_versions(model)
    return versions[0] if versions else None


def describe(
    policy: PromotionPolicy, min_value: float | None, *, gated: bool, plugin: str | None
) -> str:
    """What happens to the next candidate, in one or two sentences."""
    if not gated:
        return (
            f"Versions of this model are not compared (plugin {plugin} declares its models "
            "not comparable): a new version becomes production only when there is none, "
            "otherwise it goes to staging; promote by hand."
        )
    data = (
        f"the dataset {policy.evaluation_dataset}"
        if policy.evaluation_dataset
        else "production's recorded held-out data (images neither model trained on)"
    )
    floor = f" and reaches {min_value:g}" if min_value is not None else ""
    recall = (
        f", with every label's recall at least {policy.min_label_recall:g}"
        if policy.min_label_recall is not None
        else ""
    )
    return (
        f"Promoted to production only if it beats production by {policy.min_improvement:g} "
        f"{policy.metric} on {data}{floor}{recall}; otherwise it goes to staging with the "
        f"reason. With no production version yet, it becomes production if its "
        f"{policy.metric} reaches the floor."
    )


def policy_info(
    model: str,
    stored: StoredPolicy | None,
    *,
    labels: Sequence[str] | None,
    gated: bool,
    plugin: str | None,
) -> PolicyInfo:
    policy = stored.policy if stored is not None else PromotionPolicy()
    floor = effective_min_value(policy, labels)
    return PolicyInfo(
        **policy.model_dump(),
        model=model,
        gated=gated,
        effective_min_value=floor,
        summary=describe(policy, floor, gated=gated, plugin=plugin),
        updated_at=stored.at if stored is not None else None,
        updated_by=stored.by if stored is not None else None,
    )
