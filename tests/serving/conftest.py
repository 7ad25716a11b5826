"""Serving test helpers: an emotion-like model in a real MLflow registry and a served app."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import cv2
import httpx
import mlflow
import mlflow.onnx
import numpy as np
import onnx
import pytest
import uvicorn
from fastapi import FastAPI
from skimage import data as skdata

from chimp.serving.app import create_app
from chimp.serving.config import ServingConfig, ServingSettings
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.models import InputSpec, ModelMetadata, ModelVersionInfo
from chimp.shared.settings import MlflowConfig
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.fixtures.ports import free_port, wait_for_port

EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
FACE_SPEC = InputSpec(height=48, width=48, channels=1, color="gray")


def emotion_metadata() -> ModelMetadata:
    return ModelMetadata(task="face-classification", labels=EMOTIONS, input=FACE_SPEC)


def register_version(
    registry: ModelRegistry, name: str, folder: Path, *, seed: int, alias: str | None = PRODUCTION
) -> ModelVersionInfo:
    """Log a tiny 48x48 gray 7-emotion ONNX model as a new version of ``name``."""
    onnx_path = make_tiny_onnx(folder / f"model-{seed}.onnx", EMOTIONS, FACE_SPEC, seed=seed)
    info = registry.log_model_version(name, onnx_path, emotion_metadata())
    if alias is not None:
        registry.set_alias(name, alias, info.version)
    return info


def face_jpeg(width: int = 640, height: int = 480) -> bytes:
    """The astronaut photo (one face) letterboxed into a ``width`` x ``height`` JPEG."""
    rgb: np.ndarray = skdata.astronaut()
    side = min(width, height)
    face = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (side, side))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    x0 = (width - side) // 2
    canvas[:, x0 : x0 + side] = face
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    return face_jpeg()


def serving_settings(
    tmp_path: Path, tracking_uri: str, model_name: str, **serving: object
) -> ServingSettings:
    config = ServingConfig.model_validate({"poll_interval_s": 0.2, **serving})
    return ServingSettings(
        data_dir=tmp_path / "data",
        model_name=model_name,
        mlflow=MlflowConfig(tracking_uri=tracking_uri),
        serving=config,
    )


@contextlib.asynccontextmanager
async def serve(settings: ServingSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an in-process httpx client."""
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
            yield client


class TcpProxy:
    """A TCP relay to a real server that a test can cut, to make MLflow "go down"."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        # Nothing listens on the port any more: connections are refused, like a dead server.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", self.port)) != 0

    def restore(self) -> None:
        """Listen again on the same port: the server is "back"."""
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@pytest.fixture
def mlflow_proxy(mlflow_uri: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy(int(mlflow_uri.rsplit(":", 1)[1]))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@contextlib.contextmanager
def serve_tcp(settings: ServingSettings) -> Iterator[str]:
    """The app under uvicorn on a free port in a thread (for clients that need a socket)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        wait_for_port(port, timeout=60)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def log_plain_onnx(tracking_uri: str, name: str, model: onnx.ModelProto) -> str:
    """Register ``model`` the ordinary MLflow way (no CHIMP metadata), alias production."""
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.create_experiment(f"plain-{uuid.uuid4().hex[:12]}")
    # mlflow.onnx.log_model only logs to the global tracking URI; every test server is the same.
    mlflow.set_tracking_uri(tracking_uri)
    # MLflow warns about its own internals (type hints, pip requirements) while logging.
    with warnings.catch_warnings(), mlflow.start_run(experiment_id=experiment):
        warnings.simplefilter("ignore")
        info = mlflow.onnx.log_model(model, name="model", registered_model_name=name)
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, PRODUCTION, version)
    return version
