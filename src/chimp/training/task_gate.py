"""After a training task: the worker puts each version it registered through the gate.

The training child only registers versions; aliases move here, in the worker, in the same job:

- a shared version goes through :func:`chimp.training.gate.gate_version` (candidate vs the
  ``production`` champion on the same evaluation data);
- a calibration version (the task has a user id) goes through the personal gate
  (:mod:`chimp.training.personal_gate`): it can move only its user's ``user-<id>`` alias,
  never ``production``, even when there is no production version yet.

The task's result gains ``decision`` (the first shared version's), ``decisions`` (all), and the
versions' final aliases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chimp.shared.datastore import Datastore
from chimp.shared.errors import NotFoundError
from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.continual import Decision, PromotionPolicy
from chimp.training.evaluation import EvaluationSet, candidate_data, dataset_set
from chimp.training.gate import gate_version
from chimp.training.personal_gate import personal_gate
from chimp.training.plugins.discovery import PluginCatalog
from chimp.training.policy import get_policy
from chimp.training.records import ModelRecords
from chimp.training.splits import DATASET_KEY_TAG, HOLDOUT_TAG

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], Awaitable[object]]


@dataclass
class TaskVersions:
    task_id: str
    plugin: str
    user_id: str | None
    promote: bool
    datasets: dict[str, Path]  # dataset key -> local folder
    dataset_names: dict[str, str]  # dataset key -> stored name
    forgetting_bound: float = 0.05  # the personal gate's, for calibration tasks


def _comparable(catalog: PluginCatalog, plugin: str) -> bool:
    try:
        return catalog.get(plugin).info.comparable_models
    except Exception:  # a plugin this worker lacks: compare its models
        return True


def _gate_one(
    registry: ModelRegistry,
    records: ModelRecords,
    task: TaskVersions,
    model: str,
    version: str,
    policy: PromotionPolicy,
    comparable: bool,
    evaluation: EvaluationSet | None,
    work_dir: Path,
) -> Decision:
    info = registry.get_version(model, version)
    key = info.tags.get(DATASET_KEY_TAG)
    candidate = None
    if key is not None and key in task.datasets:
        name = task.dataset_names.get(key, key)
        candidate = candidate_data(task.datasets[key], name, info.tags.get(HOLDOUT_TAG))
    return gate_version(
        registry,
        records,
        model,
        version,
        policy=policy,
        comparable=comparable,
        candidate=candidate,
        evaluation_dataset=evaluation,
        promote=task.promote,
        task_id=task.task_id,
        work_dir=work_dir,
    )


async def policy_dataset(
    datastore: Datastore, policy: PromotionPolicy, work_dir: Path
) -> EvaluationSet | None:
    """The policy's evaluation dataset, read; None when it names none (or it is gone)."""
    if policy.evaluation_dataset is None:
        return None
    folder = work_dir / "evaluation-dataset"
    if folder.exists():  # read once per task
        return await asyncio.to_thread(dataset_set, folder, policy.evaluation_dataset)
    try:
        root = await datastore.download_dataset(policy.evaluation_dataset, folder)
    except NotFoundError:
        logger.warning("evaluation dataset %s is gone", policy.evaluation_dataset)
        return None
    return await asyncio.to_thread(dataset_set, root, policy.evaluation_dataset)


async def promote_task_versions(
    registry: ModelRegistry,
    records: ModelRecords,
    datastore: Datastore,
    catalog: PluginCatalog,
    task: TaskVersions,
    result: dict[str, Any],
    work_dir: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Move the aliases of the versions in ``result["models"]``; returns the new result."""
    models = list(result.get("models") or [])
    if not models:
        return result
    decisions: list[Decision] = []
    for entry in models:
        name, version = str(entry["name"]), str(entry["version"])
        if task.user_id is not None:
            await progress(0.99, f"evaluating version {version} against the personal model")
            policy = await asyncio.to_thread(get_policy, records, name)
            shared = await policy_dataset(datastore, policy, work_dir)
            decisions.append(
                await asyncio.to_thread(
                    personal_gate,
                    registry,
                    records,
                    name,
                    version,
                    task.user_id,
                    personal_root=next(iter(task.datasets.values()), None),
                    shared_dataset=shared,
                    forgetting_bound=task.forgetting_bound,
                    policy=policy,
                    task_id=task.task_id,
                    work_dir=work_dir,
                )
            )
            continue
        await progress(0.99, f"evaluating version {version} against production")
        policy = await asyncio.to_thread(get_policy, records, name)
        evaluation = await policy_dataset(datastore, policy, work_dir)
        decision = await asyncio.to_thread(
            _gate_one,
            registry,
            records,
            task,
            name,
            version,
            policy,
            _comparable(catalog, task.plugin),
            evaluation,
            work_dir,
        )
        decisions.append(decision)
    final = []
    for entry in models:
        info = await asyncio.to_thread(
            registry.get_version, str(entry["name"]), str(entry["version"])
        )
        final.append(info.model_dump(mode="json", exclude={"metadata"}))
    out = {**result, "models": final}
    if decisions:
        out["decision"] = decisions[0].model_dump(mode="json")
        out["decisions"] = [d.model_dump(mode="json") for d in decisions]
    return out
