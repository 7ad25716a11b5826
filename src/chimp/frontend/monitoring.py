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
HISTORY_PAGE_SIZE = 500  # the most training's history gives per page
HISTORY_PAGES = 20  # enough for 10,000 moves in one period


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
    """Production moves between ``start`` and ``end``, or none and why.

    The history is paged newest first (``offset``/``limit``, ``total``): pages are read until
    one reaches back before ``start``.
    """
    moves: list[ProductionMove] = []
    offset = 0
    for _ in range(HISTORY_PAGES):
        try:
            response = await training.request(
                "GET",
                upstream_path("models", name, "history"),
                params={"offset": offset, "limit": HISTORY_PAGE_SIZE},
            )
        except DependencyUnavailableError as exc:
            return [], f"no production markers: {exc.message}"
        if response.status_code == 404:
            return [], "no production markers: the training service keeps no alias history"
        if response.status_code >= 400:
            return [], f"no production markers: training answered {response.status_code}"
        body = response.json()
        entries = _entries(body)
        oldest: datetime | None = None
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            try:
                move = ProductionMove.model_validate(entry)
            except ValidationError:
                continue
            at = _aware(move.at)
            oldest = at if oldest is None else min(oldest, at)
            if entry.get("alias") == PRODUCTION and start <= at < end:
                moves.append(move.model_copy(update={"at": at}))
        offset += len(entries)
        total = body.get("total") if isinstance(body, dict) else None
        done = not isinstance(total, int) or offset >= total or not entries
        if done or (oldest is not None and oldest < start):
            break
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
