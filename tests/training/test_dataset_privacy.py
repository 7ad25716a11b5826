"""People's calibration frames are faces: dataset reads need the token, and a user's own
datasets are listed only for that user."""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import SecretStr

from chimp.shared.schemas.datasets import dataset_owner, visible_to
from tests.training.conftest import SettingsFactory, api_client
from tests.training.test_api import make_zip, upload

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_dataset_reads_need_the_token(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    settings = make_settings()
    settings.auth.token = SecretStr(TOKEN)
    async with api_client(settings) as client:
        created = await client.post(
            "/datasets",
            files={"file": ("d.zip", make_zip({"a.png": b"face"}), "application/zip")},
            data={"dataset_name": "calib-alice-1"},
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        for path in ("/datasets", "/datasets/calib-alice-1"):
            anonymous = await client.get(path)
            assert anonymous.status_code == 401, path
            assert "calib-alice" not in anonymous.text
            assert (await client.get(path, headers=AUTH)).status_code == 200


async def test_listing_for_a_user_shows_shared_and_their_own_datasets_only(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    async with api_client(make_settings()) as client:
        for name in ("faces", "calib-alice-1", "calib-alice-x-2", "calib-bob-3"):
            assert (await upload(client, name, make_zip({"a.png": b"1"}))).status_code == 201
        everything = (await client.get("/datasets")).json()
        assert len(everything) == 4  # the admin sees all
        alice = (await client.get("/datasets", params={"user_id": "alice"})).json()
        assert sorted(d["name"] for d in alice) == ["calib-alice-1", "faces"]
        bad = await client.get("/datasets", params={"user_id": "no spaces"})
        assert bad.status_code == 422


async def test_uploading_under_another_users_name_is_refused(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    async with api_client(make_settings()) as client:
        response = await client.post(
            "/datasets",
            params={"user_id": "mallory"},
            files={"file": ("d.zip", make_zip({"a.png": b"1"}), "application/zip")},
            data={"dataset_name": "calib-alice-1"},
        )
        assert response.status_code == 403, response.text
        assert "another user" in response.json()["error"]
        assert (await client.get("/datasets")).json() == []


def test_owner_of_a_personal_dataset_is_unambiguous() -> None:
    assert dataset_owner("faces") is None
    assert dataset_owner("calib-alice-17") == "alice"
    # user ids may contain '-': the stamp is the last all-digit part, the owner what precedes it.
    assert dataset_owner("calib-alice-x-17") == "alice-x"
    assert not visible_to("calib-alice-x-17", "alice")
    assert visible_to("calib-alice-x-17", "alice-x")
    # A personal-looking name without a stamp belongs to nobody a user can be.
    assert not visible_to("calib-alice", "alice")
    assert visible_to("faces", "anyone")
