"""Rollback: ``production`` goes back to the previous champion, as the history tells it.

Replaying the history of ``production`` oldest first gives a stack of champions: every move to
a version pushes it, a rollback pops the current one. Rolling back pops once more and moves the
alias to the new top, so a second rollback goes one champion further back. Version numbers play
no part: "the newest older version" may be one the gate rejected.
"""

from __future__ import annotations

from chimp.shared.errors import ConflictError
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.continual import HistoryEntry, RollbackResult
from chimp.training.external import record_external_moves
from chimp.training.history import move_alias, read_history
from chimp.training.records import ModelRecords


def champion_stack(entries: list[HistoryEntry]) -> list[str]:
    """The champions of ``production`` still to roll back through, oldest first."""
    stack: list[str] = []
    for entry in entries:
        if entry.alias != PRODUCTION:
            continue
        if entry.kind == "rollback":
            if stack:
                stack.pop()
            if entry.to_version is not None and (not stack or stack[-1] != entry.to_version):
                stack.append(entry.to_version)
        elif entry.to_version is None:
            stack.clear()
        elif not stack or stack[-1] != entry.to_version:
            stack.append(entry.to_version)
    return stack


def rollback_production(
    registry: ModelRegistry, records: ModelRecords, model: str, *, actor: str
) -> RollbackResult:
    """Move ``production`` to the previous champion; ConflictError when there is none."""
    record_external_moves(registry, records, model)  # the history must match the registry
    current = registry.aliases(model).get(PRODUCTION)
    if current is None:
        raise ConflictError(f"model {model!r} has no production version: nothing to roll back")
    stack = champion_stack(read_history(records, model))
    existing = {v.version for v in registry.list_versions(model)}
    if stack and stack[-1] == current:
        stack.pop()
    while stack and stack[-1] not in existing:  # a deleted version cannot serve again
        stack.pop()
    if not stack:
        raise ConflictError(
            f"nothing to roll back to: version {current} of {model!r} is the first champion "
            "in the history"
        )
    target = stack[-1]
    move_alias(
        registry,
        records,
        model,
        PRODUCTION,
        target,
        kind="rollback",
        actor=actor,
        reason=f"rollback from version {current} to the previous champion, version {target}",
    )
    return RollbackResult(alias=PRODUCTION, version=target, previous=current)
