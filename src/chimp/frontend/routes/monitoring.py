"""``/api/monitoring/models/{name}``: the models page's monitoring charts and drift badges."""

from __future__ import annotations

from fastapi import APIRouter, Request

from chimp.frontend.dependencies import BackendsDep
from chimp.frontend.monitoring import PERIOD_PARAMS, MonitoringView, monitoring_view
from chimp.shared.errors import BadRequestError, DependencyUnavailableError, error_responses

router = APIRouter(prefix="/api", tags=["api"])


@router.get(
    "/monitoring/models/{name}",
    operation_id="model_monitoring",
    responses=error_responses(BadRequestError, DependencyUnavailableError),
)
async def model_monitoring(name: str, request: Request, backends: BackendsDep) -> MonitoringView:
    """Serving's monitoring report (``version``, ``from``, ``to``, ``window`` as serving takes
    them) with the production moves of the period from training's alias history."""
    params = {k: v for k, v in request.query_params.items() if k in PERIOD_PARAMS}
    return await monitoring_view(backends, name, params)
