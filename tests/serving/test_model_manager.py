"""Model manager behaviour with a fake registry (real ONNX sessions, no MLflow)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import anyio
import numpy as np
import pytest

from chimp.serving.config import BatchingConfig
from chimp.serving.inference import SessionOptions
from chimp.serving.loading import OnnxLoader
from chimp.serving.model_manager import ModelLoadError, ModelManager, Selector
from chimp.shared.errors import DependencyUnavailableError, NotFoundError
from chimp.shared.schemas.models import ModelVersionInfo
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.serving.conftest import EMOTIONS, FACE_SPEC, emotion_metadata

NAME = "emotions"


class FakeRegistry:
    """Versions are ONNX files in a folder; ``down`` makes every call fail like a dead server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.versions: dict[str, Path] = {}
        self.alias_table: dict[str, str] = {}
        self.down = False
        self.downloads = 0
        self.gate: asyncio.Event | None = None  # when set, downloads wait for it

    def add(self, version: str, seed: int, *, broken: bool = False) -> None:
        spec = FACE_SPEC.model_copy(update={"height": 64}) if broken else FACE_SPEC
        self.versions[version] = make_tiny_onnx(
            self.folder / f"v{version}.onnx", EMOTIONS, spec, seed=seed
        )

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("connection refused")

    async def aliases(self, name: str) -> dict[str, str]:
        self._check()
        if name != NAME:
            raise NotFoundError(f"model {name!r} is not registered")
        return dict(self.alias_table)

    async def get_version(self, name: str, version: str) -> ModelVersionInfo:
        self._check()
        if name != NAME or version not in self.versions:
            raise NotFoundError(f"model {name!r} has no version {version}")
        return ModelVersionInfo(name=name, version=version, metadata=emotion_metadata())

    async def download_onnx(self, name: str, version: str, dest_dir: Path) -> Path:
        self._check()
        self.downloads += 1
        if self.gate is not None:
            await self.gate.wait()
        dest_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(self.versions[version], dest_dir / "model.onnx"))


@pytest.fixture
def fake(tmp_path: Path) -> FakeRegistry:
    return FakeRegistry(tmp_path / "registry")


def make_manager(fake: FakeRegistry, tmp_path: Path) -> ModelManager:
    loader = OnnxLoader(
        SessionOptions(providers=["CPUExecutionProvider"]),
        inference_limiter=anyio.CapacityLimiter(2),
        batching=BatchingConfig(),
    )
    return ModelManager(
        fake, loader, cache_dir=tmp_path / "cache", required=[NAME], poll_interval_s=3600
    )


async def test_alias_moves_only_after_the_new_version_loaded(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.add("1", seed=1)
    fake.add("2", seed=2)
    fake.alias_table["production"] = "1"
    manager = make_manager(fake, tmp_path)
    await manager.start()
    try:
        fake.alias_table["production"] = "2"
        fake.gate = asyncio.Event()
        refresh = asyncio.create_task(manager.refresh())
        while fake.downloads < 2:  # the new version's download has started
            await asyncio.sleep(0.01)
        during = await manager.resolve(NAME, Selector())
        fake.gate.set()
        report = await refresh
        after = await manager.resolve(NAME, Selector())
    finally:
        await manager.stop()
    assert during.ref.version == "1"
    assert report.changes == [f"{NAME}@production: version 1 -> 2"]
    assert after.ref.version == "2"
    assert manager.loaded(NAME, "1") is None  # the old version was dropped after the swap


async def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.add("1", seed=1)
    fake.add("2", seed=2, broken=True)
    fake.alias_table["production"] = "1"
    manager = make_manager(fake, tmp_path)
    await manager.start()
    try:
        fake.alias_table["production"] = "2"
        report = await manager.refresh()
        resolved = await manager.resolve(NAME, Selector())
        with pytest.raises(ModelLoadError, match="input spec"):
            await manager.resolve(NAME, Selector(version="2"))
    finally:
        await manager.stop()
    assert resolved.ref.version == "1"
    assert "version 2" in report.errors[0]
    assert manager.readiness() == {NAME: None}


async def test_registry_down_keeps_loaded_models_and_readiness(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.add("1", seed=1)
    fake.alias_table["production"] = "1"
    manager = make_manager(fake, tmp_path)
    await manager.start()
    try:
        fake.down = True
        report = await manager.refresh()
        resolved = await manager.resolve(NAME, Selector())
        out = await resolved.model.runner.infer(np.zeros((1, 1, 48, 48), np.float32))
        with pytest.raises(DependencyUnavailableError):
            await manager.resolve("unknown-model", Selector())
    finally:
        await manager.stop()
    assert not report.registry_ok
    assert manager.registry_ok is False
    assert out.shape == (1, 7)
    assert manager.readiness() == {NAME: None}


async def test_not_ready_when_the_registry_was_never_reached(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.down = True
    manager = make_manager(fake, tmp_path)
    await manager.start()
    try:
        reasons = manager.readiness()
    finally:
        await manager.stop()
    assert "registry" in (reasons[NAME] or "")


async def test_concurrent_first_requests_load_a_version_once(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    fake.add("1", seed=1)
    manager = make_manager(fake, tmp_path)
    await manager.start()
    try:
        results = await asyncio.gather(
            *(manager.resolve(NAME, Selector(version="1")) for _ in range(8))
        )
        # A second process (a fresh manager) finds the download in the cache.
        again = make_manager(fake, tmp_path)
        await again.start()
        await again.resolve(NAME, Selector(version="1"))
        await again.stop()
    finally:
        await manager.stop()
    assert {id(r.model) for r in results} == {id(results[0].model)}
    assert fake.downloads == 1


async def test_unknown_names_and_aliases_are_404(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.add("1", seed=1)
    fake.alias_table["production"] = "1"
    manager = make_manager(fake, tmp_path)
    await manager.start()
    try:
        with pytest.raises(NotFoundError, match="not registered"):
            await manager.resolve("other", Selector())
        with pytest.raises(NotFoundError, match="aliases: production"):
            await manager.resolve(NAME, Selector(alias="staging"))
        with pytest.raises(NotFoundError, match="no version 7"):
            await manager.resolve(NAME, Selector(version="7"))
        fallback = await manager.resolve(NAME, Selector(user="carol"))
    finally:
        await manager.stop()
    assert (fallback.ref.alias, fallback.ref.version) == ("production", "1")


def test_a_model_downloaded_into_a_relative_cache_folder_is_served_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chimp up's default data folder is ./.chimp; MLflow answers downloads with absolute paths.
    from chimp.serving.model_manager import _publish

    monkeypatch.chdir(tmp_path)
    staging = Path(".chimp/models/.staging-1")
    downloaded = (staging / "model" / "model.onnx").resolve()
    downloaded.parent.mkdir(parents=True)
    downloaded.write_bytes(b"onnx")
    published = _publish(staging, downloaded, Path(".chimp/models/emotion/1"))
    assert published.read_bytes() == b"onnx"
    assert published.resolve() == (tmp_path / ".chimp/models/emotion/1/model/model.onnx")
