"""The models page's monitoring view: serving's report plus where production moved.

Two documented endpoints, fetched together: serving's ``GET /monitoring/models/{name}`` (the
time series and each version's drift status) and training's ``GET /models/{name}/history``
(alias moves, newest first). The history only adds markers to the charts: when training does
not offer it (404) or cannot be reached, the view says so and the charts are drawn without.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chimp.frontend.clients import Backend, BackendError, Backends, raise_for_error, upstream_path
from chimp.shared.errors import DependencyUnavailableError
from chimp.shared.registry import PRODUCTION
from chimp.shared.schemas.base import ErrorBody
from chimp.shared.schemas.monitoring import ModelMonitoring

PERIOD_PARAMS = ("version", "from", "to", "window")


class ProductionMove(BaseModel):
    """One move of the production alias, as training's history reports it."""

    model_config = ConfigDict(extra="ignore")

    from_version: str | None = None
    to_version: str | None = None
    actor: str | None = None
    reason: str | None = None
    at: datetime


class MonitoringView(BaseModel):
    monitoring: ModelMonitoring
    production_moves: list[ProductionMove] = Field(
        description="Moves of production inside the period, oldest first."
    )
    history: Literal["ok", "unavailable"]
    history_note: str | None = None


def _entries(body: Any) -> list[Any]:
    """The entries of a history page: a list, or the list inside a paged envelope."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("entries", "items", "history", "moves"):
            if isinstance(body.get(key), list):
                return list(body[key])
    return []


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def production_moves(
    training: Backend, name: str, start: datetime, end: datetime
) -> tuple[list[ProductionMove], str | None]:
    """Production moves between ``start`` and ``end``, or none and why."""
    try:
        response = await training.request("GET", upstream_path("models", name, "history"))
    except DependencyUnavailableError as exc:
        return [], f"no production markers: {exc.message}"
    if response.status_code == 404:
        return [], "no production markers: the training service keeps no alias history"
    if response.status_code >= 400:
        return [], f"no production markers: training answered {response.status_code}"
    moves = []
    for entry in _entries(response.json()):
        if not isinstance(entry, dict) or entry.get("alias") != PRODUCTION:
            continue
        try:
            move = ProductionMove.model_validate(entry)
        except ValidationError:
            continue
        if start <= _aware(move.at) < end:
            moves.append(move.model_copy(update={"at": _aware(move.at)}))
    return sorted(moves, key=lambda m: m.at), None


async def monitoring_view(backends: Backends, name: str, params: dict[str, str]) -> MonitoringView:
    response = await backends.serving.request(
        "GET", upstream_path("monitoring", "models", name), params=params
    )
    raise_for_error("serving", response)
    try:
        monitoring = ModelMonitoring.model_validate(response.json())
    except (ValidationError, ValueError):
        body = ErrorBody(
            error="the serving service answered something that is not a monitoring report",
            code="backend_error",
        )
        raise BackendError(502, body) from None
    moves, note = await production_moves(
        backends.training, name, _aware(monitoring.start), _aware(monitoring.end)
    )
    return MonitoringView(
        monitoring=monitoring,
        production_moves=moves,
        history="ok" if note is None else "unavailable",
        history_note=note,
    )
