"""Guarantee: the S3 datastore (a real SeaweedFS) going down in the middle of an upload fails
that upload cleanly with a 503 naming S3, and no partial dataset is ever visible, neither
while it is down nor once it is back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from chimp.shared.datastore.s3 import S3Datastore
from chimp.shared.schemas.datasets import DatasetEntry
from chimp.shared.settings import DatastoreConfig
from tests.fixtures.s3 import SeaweedFS, make_s3_config
from tests.training.conftest import SettingsFactory, api_client
from tests.training.test_api import make_zip, upload


async def test_s3_down_mid_upload_fails_cleanly_and_leaves_no_visible_dataset(
    make_settings: SettingsFactory,
    redis_client: aioredis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "weed").mkdir()
    server = SeaweedFS(tmp_path / "weed")
    server.start()
    try:
        config = DatastoreConfig(backend="s3", s3=make_s3_config(server.endpoint))
        settings = make_settings(datastore=config)
        real_upload_file = S3Datastore._upload_file
        started: list[str] = []

        async def upload_then_die(self: S3Datastore, *args: Any) -> None:
            entry: DatasetEntry = args[-1]
            started.append(entry.path)
            if len(started) == 3:
                server.stop()  # the datastore goes down with the upload under way
            await real_upload_file(self, *args)

        monkeypatch.setattr(S3Datastore, "_upload_file", upload_then_die)
        files = {f"train/a/{i}.png": bytes([i]) * 2000 for i in range(8)}
        async with api_client(settings) as client:
            assert (await upload(client, "warmup", make_zip({"a.png": b"1"}))).status_code == 201
            started.clear()
            response = await upload(client, "faces", make_zip(files))
            assert response.status_code == 503, response.text
            assert "S3" in response.json()["error"]
            assert (await client.get("/datasets")).status_code == 503  # down, and it says so
            server.start()
            listed = [d["name"] for d in (await client.get("/datasets")).json()]
            assert (await client.get("/datasets/faces")).status_code == 404
            # Once back, the same upload goes through whole.
            monkeypatch.setattr(S3Datastore, "_upload_file", real_upload_file)
            retried = await upload(client, "faces", make_zip(files))
        assert listed == ["warmup"]
        assert retried.status_code == 201, retried.text
        assert retried.json()["files"] == 8
        assert list((settings.data_dir / "staging").iterdir()) == []
    finally:
        server.stop()
