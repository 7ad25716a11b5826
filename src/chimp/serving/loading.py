"""Opening a downloaded ONNX file as a ready-to-serve :class:`LoadedModel`."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.to_thread

from chimp.serving.config import BatchingConfig
from chimp.serving.inference import ModelRunner, OnnxModel, SessionOptions
from chimp.serving.model_manager import LoadedModel, ModelLoadError
from chimp.shared.model_fit import ModelMismatchError, check_fits
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo


def check_against_metadata(model: OnnxModel, metadata: ModelMetadata, what: str) -> None:
    """Refuse a version whose graph disagrees with its metadata, before it serves anything.

    The rule is the registry's (:func:`chimp.shared.model_fit.check_fits`), with its message.
    """
    try:
        check_fits(model.graph, metadata)
    except ModelMismatchError as exc:
        raise ModelLoadError(f"{what}: {exc.message}") from None


class OnnxLoader:
    """Opens sessions in a worker thread (one load at a time) and warms them up."""

    def __init__(
        self,
        options: SessionOptions,
        *,
        inference_limiter: anyio.CapacityLimiter,
        batching: BatchingConfig,
        warm_up: bool = True,
    ) -> None:
        self._options = options
        self._inference_limiter = inference_limiter
        self._batching = batching
        self._warm_up = warm_up
        # Loads are rare and heavy; one at a time keeps request threads free.
        self._load_limiter = anyio.CapacityLimiter(1)

    async def __call__(self, info: ModelVersionInfo, onnx_path: Path) -> LoadedModel:
        metadata = info.metadata
        what = f"{info.name} version {info.version}"
        model = await anyio.to_thread.run_sync(
            self._open, onnx_path, metadata, what, limiter=self._load_limiter
        )
        runner = ModelRunner(model, self._inference_limiter, self._batching)
        return LoadedModel(name=info.name, version=info.version, metadata=metadata, runner=runner)

    def _open(self, path: Path, metadata: ModelMetadata | None, what: str) -> OnnxModel:
        # Without CHIMP metadata the graph alone describes the model (its first input and
        # output are the primary ones).
        model = OnnxModel(
            path,
            self._options,
            input_name=metadata.input.input_name if metadata else None,
            output_name=metadata.input.output_name if metadata else None,
        )
        if metadata is not None:
            check_against_metadata(model, metadata, what)
        if self._warm_up:
            model.warm_up()
        return model
