"""``GET /model`` and ``POST /model/{name}/infer``, kept for the original system's clients.

``?stage=production|staging`` maps onto the registry alias of that name (stages are gone in
MLflow; aliases replaced them) and ``?id=<user>`` picks that user's calibrated model, falling
back to the stage's model. Inputs are already-preprocessed float arrays shaped like the model
input (see ``GET /model``): one ``[C, H, W]`` sample or a batch ``[N, C, H, W]``.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from chimp.serving.dependencies import ManagerDep, StateDep
from chimp.serving.image_pipeline import top_label
from chimp.serving.inference import TensorShapeError
from chimp.serving.model_manager import Selector
from chimp.serving.schemas import (
    LegacyInferRequest,
    LegacyInferResponse,
    LegacyModelInfo,
    LegacyPrediction,
)
from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    NotFoundError,
    error_responses,
)
from chimp.shared.onnx_model import scores_from_outputs

_ERRORS = error_responses(BadRequestError, NotFoundError, DependencyUnavailableError)

StageQuery = Annotated[
    str,
    Query(
        description="production or staging (any alias name works)",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
    ),
]
UserQuery = Annotated[
    str | None,
    Query(alias="id", description="A user id: that user's calibrated model.", max_length=64),
]


def _selector(stage: str, user: str | None) -> Selector:
    return Selector(alias=stage.lower(), user=user)


def build_router(default_model: str) -> APIRouter:
    router = APIRouter(tags=["legacy"])

    @router.get("/model", operation_id="legacy_model_info", responses=_ERRORS)
    async def model_info(
        manager: ManagerDep,
        name: Annotated[str | None, Query(description="Default: the configured model.")] = None,
        stage: StageQuery = "production",
        user: UserQuery = None,
    ) -> LegacyModelInfo:
        """The model version that would answer, with its labels and input spec."""
        resolved = await manager.resolve(name or default_model, _selector(stage, user))
        meta = resolved.model.metadata
        return LegacyModelInfo(
            model=resolved.ref,
            task=meta.task,
            labels=meta.labels,
            input=meta.input,
            input_shape=[meta.input.channels, meta.input.height, meta.input.width],
        )

    @router.post("/model/{name}/infer", operation_id="legacy_infer", responses=_ERRORS)
    async def infer(
        name: str,
        body: LegacyInferRequest,
        state: StateDep,
        stage: StageQuery = "production",
        user: UserQuery = None,
    ) -> LegacyInferResponse:
        resolved = await state.manager.resolve(name, _selector(stage, user))
        model = resolved.model
        session = model.runner.model
        try:
            batch = np.asarray(body.inputs, dtype=np.float32)
        except (ValueError, TypeError):
            raise TensorShapeError("inputs is not a regular array of numbers") from None
        if batch.ndim == len(session.sample_shape):
            batch = batch[np.newaxis]
        if not np.isfinite(batch).all():
            raise TensorShapeError("inputs contain NaN or infinity")
        session.check_input(batch)
        outputs = await model.runner.infer_rows(batch)
        scores = scores_from_outputs(outputs, model.metadata.outputs_probabilities)
        labels = model.metadata.labels
        predictions = []
        for row in scores:
            label, score, per_label = top_label(row, labels)
            predictions.append(LegacyPrediction(label=label, score=score, scores=per_label))
        state.metrics.count_labels(name, model.version, [p.label for p in predictions])
        return LegacyInferResponse(
            model=resolved.ref, labels=labels, outputs=scores.tolist(), predictions=predictions
        )

    return router
