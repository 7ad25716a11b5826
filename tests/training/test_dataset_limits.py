"""Uploads that would fill the disk are refused with a 4xx naming the limit, leaving nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis.asyncio as aioredis

from tests.shared.zips import bomb_zip
from tests.training.conftest import SettingsFactory, api_client
from tests.training.test_api import make_zip, upload


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def test_zip_bomb_is_refused_by_its_compression_ratio(
    make_settings: SettingsFactory, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    # 16 MiB of zeros packs into ~16 KiB: far past the default 100:1 for entries over 1 MiB,
    # yet well inside the per-dataset byte budget, which alone used to let it through.
    settings = make_settings()
    bomb = bomb_zip(tmp_path / "bomb.zip", 16 * 1024 * 1024).read_bytes()
    assert len(bomb) < 64 * 1024
    async with api_client(settings) as client:
        response = await upload(client, "bomb", bomb)
        assert response.status_code == 422, response.text
        body = response.json()
        assert "compression ratio" in body["error"]
        assert body["detail"]["limit"] == "max_compression_ratio"
        assert (await client.get("/datasets")).json() == []
    assert _leftovers(settings.datastore_path()) == []


async def test_ratio_limit_is_configurable_and_spares_small_entries(
    make_settings: SettingsFactory, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = make_settings()
    settings.datastore.max_compression_ratio = 100_000
    bomb = bomb_zip(tmp_path / "bomb.zip", 2 * 1024 * 1024).read_bytes()
    async with api_client(settings) as client:
        assert (await upload(client, "zeros", bomb)).status_code == 201
        # Small, very compressible files (a CSV of one repeated row) are fine by default.
        settings.datastore.max_compression_ratio = 100
        small = make_zip({"labels.csv": b"path,label\n" * 50_000})
        assert (await upload(client, "labels", small)).status_code == 201


async def test_upload_that_would_leave_too_little_free_disk_is_refused(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    settings = make_settings()
    # Whatever this machine has free, keeping 100% of the disk free refuses every upload.
    settings.datastore.min_free_disk_fraction = 1.0
    async with api_client(settings) as client:
        response = await upload(client, "faces", make_zip({"train/a.png": b"x" * 1000}))
        assert response.status_code == 413, response.text
        body = response.json()
        assert "free disk" in body["error"]
        assert body["detail"]["limit"] == "min_free_disk_fraction"
        assert (await client.get("/datasets")).json() == []
    assert _leftovers(settings.datastore_path()) == []


async def test_default_settings_still_accept_an_honest_dataset(client: httpx.AsyncClient) -> None:
    data = make_zip({f"train/happy/{i}.png": bytes(range(256)) * 8 for i in range(20)})
    assert (await upload(client, "faces", data)).status_code == 201
