"""Noticing alias moves made outside CHIMP (the MLflow UI or API) and recording them.

The worker compares, every few seconds (an arq cron job), each model's aliases in MLflow with
where its history says they point; a difference is a move CHIMP did not make, appended with
``kind="external"`` and ``actor="external"``. A move CHIMP is making right now updates MLflow
a moment before its history entry, so a difference is recorded only if it is still there after
a short grace period.
"""

from __future__ import annotations

import logging
import time

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import SHARED_ALIASES, ModelRegistry, is_user_alias
from chimp.shared.schemas.continual import HistoryEntry
from chimp.training.history import read_history, record_move, recorded_aliases
from chimp.training.records import ModelRecords

logger = logging.getLogger(__name__)

GRACE_S = 2.0


def _differences(
    registry: ModelRegistry, records: ModelRecords, model: str
) -> dict[str, tuple[str | None, str | None]]:
    """``{alias: (recorded, actual)}`` for every CHIMP alias where the two disagree."""
    try:
        actual: dict[str, str | None] = dict(registry.aliases(model))
    except NotFoundError:
        actual = {}
    recorded = recorded_aliases(read_history(records, model))
    out: dict[str, tuple[str | None, str | None]] = {}
    for alias in set(actual) | set(recorded):
        if alias not in SHARED_ALIASES and not is_user_alias(alias):
            continue  # aliases CHIMP gives no meaning to are not its history
        if actual.get(alias) != recorded.get(alias):
            out[alias] = (recorded.get(alias), actual.get(alias))
    return out


def record_external_moves(
    registry: ModelRegistry, records: ModelRecords, model: str, *, grace_s: float = GRACE_S
) -> list[HistoryEntry]:
    """Append an ``external`` entry for each alias of ``model`` that moved outside CHIMP."""
    return _record(registry, records, [model], grace_s)


def record_all_external_moves(
    registry: ModelRegistry, records: ModelRecords, *, grace_s: float = GRACE_S
) -> int:
    """Check every model CHIMP keeps a history for; returns how many moves were recorded."""
    return len(_record(registry, records, records.models(), grace_s))


def _record(
    registry: ModelRegistry, records: ModelRecords, models: list[str], grace_s: float
) -> list[HistoryEntry]:
    found = {m: d for m in models if (d := _differences(registry, records, m))}
    if found and grace_s > 0:
        time.sleep(grace_s)  # once for all models: let moves being recorded right now land
        again = {m: _differences(registry, records, m) for m in found}
        found = {
            m: {a: d for a, d in diffs.items() if found[m].get(a) == d}
            for m, diffs in again.items()
        }
    entries = []
    for model, diffs in sorted(found.items()):
        for alias, (recorded, actual) in sorted(diffs.items()):
            what = f"to version {actual}" if actual is not None else "removed"
            entries.append(
                record_move(
                    records,
                    model,
                    alias,
                    recorded,
                    actual,
                    kind="external",
                    actor="external",
                    reason=f"{alias} {what} outside CHIMP (MLflow UI or API)",
                )
            )
            logger.info("external move of %s alias %s recorded (%s)", model, alias, what)
    return entries
