"""Opening a downloaded ONNX file as a ready-to-serve :class:`LoadedModel`."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.to_thread

from chimp.serving.config import BatchingConfig
from chimp.serving.inference import ModelRunner, OnnxModel, SessionOptions
from chimp.serving.model_manager import LoadedModel, ModelLoadError
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo


def check_against_metadata(model: OnnxModel, metadata: ModelMetadata, what: str) -> None:
    """Refuse a version whose graph disagrees with its metadata, before it serves anything."""
    spec = metadata.input
    expected = (spec.channels, spec.height, spec.width)
    if len(model.sample_shape) != len(expected):
        raise ModelLoadError(
            f"{what}: graph input has {len(model.sample_shape) + 1} dimensions, "
            "the input spec describes NCHW"
        )
    for got, want in zip(model.sample_shape, expected, strict=True):
        if got is not None and got != want:
            raise ModelLoadError(
                f"{what}: graph input is {list(model.sample_shape)}, "
                f"input spec says {list(expected)}"
            )
    if model.input_type != "tensor(float)":
        raise ModelLoadError(f"{what}: graph input is {model.input_type}, expected tensor(float)")
    classes = model.output_shape[-1] if model.output_shape else None
    if classes is not None and classes != len(metadata.labels):
        raise ModelLoadError(
            f"{what}: graph outputs {classes} scores "
            f"but metadata lists {len(metadata.labels)} labels"
        )


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
        if metadata is None:
            raise ModelLoadError(f"{info.name} version {info.version} has no metadata")
        what = f"{info.name} version {info.version}"
        model = await anyio.to_thread.run_sync(
            self._open, onnx_path, metadata, what, limiter=self._load_limiter
        )
        runner = ModelRunner(model, self._inference_limiter, self._batching)
        return LoadedModel(name=info.name, version=info.version, metadata=metadata, runner=runner)

    def _open(self, path: Path, metadata: ModelMetadata, what: str) -> OnnxModel:
        model = OnnxModel(
            path,
            self._options,
            input_name=metadata.input.input_name,
            output_name=metadata.input.output_name,
        )
        check_against_metadata(model, metadata, what)
        if self._warm_up:
            model.warm_up()
        return model
