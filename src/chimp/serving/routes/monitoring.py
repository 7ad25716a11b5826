"""``GET /monitoring/models/{name}``: what each version predicted over time, and its drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from chimp.serving.dependencies import StateDep
from chimp.shared.errors import BadRequestError, DependencyUnavailableError, error_responses
from chimp.shared.schemas.monitoring import ModelMonitoring

router = APIRouter(tags=["monitoring"])


@router.get(
    "/monitoring/models/{name}",
    operation_id="model_monitoring",
    summary="Predictions over time per version, with drift against the validation reference",
    responses=error_responses(BadRequestError, DependencyUnavailableError),
)
async def model_monitoring(
    name: str,
    state: StateDep,
    version: Annotated[
        str | None,
        Query(
            description="Only this version (default: every version seen or served).", max_length=32
        ),
    ] = None,
    start: Annotated[
        datetime | None,
        Query(
            alias="from",
            description="Start of the period (ISO 8601 or epoch seconds); "
            "default: `to` minus the configured period (one hour).",
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(alias="to", description="End of the period; default: now."),
    ] = None,
    window: Annotated[
        int | None,
        Query(
            ge=1,
            description="Bucket size of the series in seconds, a multiple of the "
            "recording window; default: about 120 buckets over the period.",
        ),
    ] = None,
) -> ModelMonitoring:
    """The period's time series (counts, label shares, mean confidence, summed over the
    versions asked for) and, per version, its count and drift status (``ok``, ``drift``,
    ``not enough data`` or ``no reference``) with the statistics behind it."""
    return await state.monitor.report(name, version=version, start=start, end=end, window=window)
