"""The alias history: every move of ``production``, ``staging`` and ``user-<id>``, append-only.

Whoever moves an alias (the gate, a person through the API, a rollback, a calibration run)
does it through :func:`move_alias` / :func:`remove_alias`, which move it in the registry and
append a :class:`HistoryEntry` with the actor and reason. Moves made outside CHIMP are found
by :mod:`chimp.training.external` and appended as ``external``. Entries live in MLflow
(:mod:`chimp.training.records`), so they survive restarts of CHIMP's services and of Redis.

These functions are synchronous (MLflow's client is): call them from a worker thread.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import ValidationError

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.continual import HistoryEntry, HistoryPage, MoveKind
from chimp.training.records import ModelRecords

KIND = "history"


def record_move(
    records: ModelRecords,
    model: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    *,
    kind: MoveKind,
    actor: str,
    reason: str,
    decision: str | None = None,
    task_id: str | None = None,
) -> HistoryEntry:
    """Append one move to ``model``'s history (the alias must already have moved)."""
    entry = HistoryEntry(
        id=uuid.uuid4().hex,
        model=model,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        kind=kind,
        actor=actor,
        reason=reason,
        decision=decision,
        task_id=task_id,
        at=datetime.now(UTC),
    )
    records.append(model, KIND, entry.model_dump_json())
    return entry


def read_history(records: ModelRecords, model: str) -> list[HistoryEntry]:
    """Every recorded move of ``model``, oldest first (unreadable records are skipped)."""
    entries: list[HistoryEntry] = []
    for record in records.read(model, KIND):
        try:
            entries.append(HistoryEntry.model_validate_json(record.value))
        except ValidationError:
            continue
    return entries


def history_page(records: ModelRecords, model: str, *, offset: int, limit: int) -> HistoryPage:
    newest_first = list(reversed(read_history(records, model)))
    return HistoryPage(
        model=model,
        entries=newest_first[offset : offset + limit],
        total=len(newest_first),
        offset=offset,
        limit=limit,
    )


def recorded_aliases(entries: list[HistoryEntry]) -> dict[str, str | None]:
    """Where the history says each alias points now (None: removed)."""
    state: dict[str, str | None] = {}
    for entry in entries:
        state[entry.alias] = entry.to_version
    return state


def current_alias(registry: ModelRegistry, model: str, alias: str) -> str | None:
    try:
        return registry.aliases(model).get(alias)
    except NotFoundError:
        return None


def move_alias(
    registry: ModelRegistry,
    records: ModelRecords,
    model: str,
    alias: str,
    version: str,
    *,
    kind: MoveKind,
    actor: str,
    reason: str,
    decision: str | None = None,
    task_id: str | None = None,
) -> HistoryEntry | None:
    """Point ``alias`` at ``version`` and record the move; None when it already pointed there."""
    before = current_alias(registry, model, alias)
    registry.set_alias(model, alias, version)
    if before == version:
        return None
    return record_move(
        records,
        model,
        alias,
        before,
        version,
        kind=kind,
        actor=actor,
        reason=reason,
        decision=decision,
        task_id=task_id,
    )


def remove_alias(
    registry: ModelRegistry,
    records: ModelRecords,
    model: str,
    alias: str,
    *,
    actor: str,
    reason: str,
    kind: MoveKind = "removed",
) -> HistoryEntry:
    """Delete ``alias`` (NotFoundError when absent) and record it."""
    before = current_alias(registry, model, alias)
    registry.delete_alias(model, alias)
    return record_move(records, model, alias, before, None, kind=kind, actor=actor, reason=reason)
