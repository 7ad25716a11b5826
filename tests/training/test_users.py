"""``/users``: corrections with provenance, what is kept about a person, and forgetting them.

Against real Redis, a real ``mlflow server`` and the local datastore.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from chimp.shared.datastore import open_datastore
from chimp.shared.registry import ModelRegistry, user_alias
from chimp.shared.registry.layout import TAG_BASE_VERSION, TAG_USER
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.schemas.users import CorrectionReceipt, UserDeletion, UserInfo
from chimp.training.config import TrainingSettings
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.training.conftest import SettingsFactory, api_client
from tests.training.corrections import AUTH, TOKEN, correct, correction_form, crop_png
from tests.training.synthetic import EMOTIONS, write_folder_dataset, zip_folder

SPEC = InputSpec(height=48, width=48, channels=1, color="gray")


def register(
    registry: ModelRegistry,
    name: str,
    tmp: Path,
    *,
    seed: int = 0,
    user: str | None = None,
    base: str | None = None,
) -> str:
    path = make_tiny_onnx(tmp / f"m{seed}.onnx", EMOTIONS, SPEC, seed=seed)
    meta = ModelMetadata(task="face-classification", labels=EMOTIONS, input=SPEC)
    tags = {TAG_USER: user} if user else {}
    if base:
        tags[TAG_BASE_VERSION] = base
    return registry.log_model_version(name, path, meta, tags=tags).version


@pytest.fixture
def user() -> str:
    return f"ann{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(make_settings: SettingsFactory, mlflow_uri: str, model_name: str) -> TrainingSettings:
    made = make_settings(mlflow_uri=mlflow_uri, feedback_threshold=3)
    made.auth.token = SecretStr(TOKEN)
    made.model_name = model_name
    return made


@pytest.fixture
async def client(
    settings: TrainingSettings, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings) as http:
        yield http


@pytest.fixture
def production(registry: ModelRegistry, model_name: str, tmp_path: Path) -> str:
    version = register(registry, model_name, tmp_path)
    registry.set_alias(model_name, "production", version)
    return version


async def test_a_correction_is_stored_with_its_provenance_in_the_plugin_layout(
    client: httpx.AsyncClient,
    settings: TrainingSettings,
    production: str,
    model_name: str,
    user: str,
    tmp_path: Path,
) -> None:
    response = await correct(client, user, correction_form(production, model_name))
    assert response.status_code == 201, response.text
    receipt = CorrectionReceipt.model_validate(response.json())
    assert (receipt.corrections, receipt.pending, receipt.until_recalibration) == (1, 1, 2)
    assert receipt.message == "2 more and a personal model is trained for you."
    stored = receipt.correction
    assert (stored.label, stored.predicted, stored.model, stored.version) == (
        "neutral",
        "sad",
        model_name,
        production,
    )
    assert stored.confidence == pytest.approx(0.62)

    # What the emotion plugin will read: train/<label>/*.png, plus the provenance record.
    async with open_datastore(settings) as datastore:
        out = await datastore.download_dataset(receipt.dataset, tmp_path / "feedback")
    images = list((out / "train" / "neutral").glob("*.png"))
    assert [p.name for p in images] == [f"{stored.id}.png"]
    saved = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
    assert saved is not None
    assert saved.shape[:2] == (48, 48)
    record = json.loads((out / "provenance" / f"{stored.id}.json").read_text())
    assert record["predicted"] == "sad"
    assert record["version"] == production
    assert record["user_id"] == user
    assert record["at"]

    info = UserInfo.model_validate((await client.get(f"/users/{user}", headers=AUTH)).json())
    assert (info.corrections, info.pending_corrections, info.personal_model) == (1, 1, None)


@pytest.mark.parametrize(
    ("image", "overrides", "status", "named"),
    [
        (b"not an image", {}, 422, "file"),
        (b"\xff\xd8\xff\xe0 truncated", {}, 422, "file"),
        (None, {"label": "bored"}, 422, "label"),
        (None, {"predicted": "bored"}, 422, "predicted"),
        (None, {"confidence": "1.5"}, 422, "confidence"),
        (None, {"version": "99"}, 404, "version"),
    ],
)
async def test_bad_corrections_are_refused_naming_the_problem_and_store_nothing(
    client: httpx.AsyncClient,
    production: str,
    model_name: str,
    user: str,
    image: bytes | None,
    overrides: dict[str, str],
    status: int,
    named: str,
) -> None:
    response = await correct(
        client, user, correction_form(production, model_name, **overrides), image
    )
    assert response.status_code == status, response.text
    assert named in response.text
    info = UserInfo.model_validate((await client.get(f"/users/{user}", headers=AUTH)).json())
    assert info.corrections == 0


async def test_user_routes_need_the_token(client: httpx.AsyncClient, user: str) -> None:
    assert (await client.get(f"/users/{user}")).status_code == 401
    assert (await client.delete(f"/users/{user}")).status_code == 401
    files = {"file": ("face.png", crop_png(), "image/png")}
    response = await client.post(f"/users/{user}/feedback", data={}, files=files)
    assert response.status_code == 401


async def test_user_info_names_the_personal_model_and_its_base(
    client: httpx.AsyncClient,
    registry: ModelRegistry,
    production: str,
    model_name: str,
    user: str,
    tmp_path: Path,
) -> None:
    personal = register(registry, model_name, tmp_path, seed=3, user=user, base=production)
    registry.set_alias(model_name, user_alias(user), personal)
    info = UserInfo.model_validate((await client.get(f"/users/{user}", headers=AUTH)).json())
    assert info.personal_model is not None
    assert (info.personal_model.version, info.personal_model.base_version) == (
        personal,
        production,
    )


async def test_delete_leaves_no_trace_in_datastore_registry_or_redis_and_spares_others(
    client: httpx.AsyncClient,
    settings: TrainingSettings,
    registry: ModelRegistry,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    production: str,
    model_name: str,
    user: str,
    tmp_path: Path,
) -> None:
    other = f"{user}-b"  # its calibration names start like the user's: they must survive
    frames = zip_folder(write_folder_dataset(tmp_path / "calib", 2), tmp_path / "calib.zip")
    for name in (f"calib-{user}-1700000000000", f"calib-{other}-1700000000001"):
        with frames.open("rb") as fh:
            response = await client.post(
                "/datasets",
                data={"dataset_name": name},
                files={"file": ("c.zip", fh, "application/zip")},
                headers=AUTH,
            )
        assert response.status_code == 201, response.text
    for who in (user, other):
        assert (await correct(client, who, correction_form(production, model_name))).is_success
    personal = register(registry, model_name, tmp_path, seed=5, user=user, base=production)
    registry.set_alias(model_name, user_alias(user), personal)
    register(registry, model_name, tmp_path, seed=6, user=user, base=production)  # a rejected one
    kept = register(registry, model_name, tmp_path, seed=7, user=other, base=production)
    enabled = await client.put(
        f"/users/{user}/settings", json={"review_uncertain": True}, headers=AUTH
    )
    assert enabled.status_code == 200, enabled.text
    assert [k async for k in redis_client.scan_iter(match=f"{redis_prefix}:user:{user}:*")]

    response = await client.delete(f"/users/{user}", headers=AUTH)
    assert response.status_code == 200, response.text
    deletion = UserDeletion.model_validate(response.json())
    assert sorted(deletion.datasets) == sorted([f"calib-{user}-1700000000000", f"feedback-{user}"])
    assert len(deletion.model_versions) == 2

    async with open_datastore(settings) as datastore:
        names = [d.name for d in await datastore.list_datasets()]
    assert not [n for n in names if user in n and other not in n]
    assert sorted(names) == sorted([f"calib-{other}-1700000000001", f"feedback-{other}"])
    assert registry.user_versions(user) == []
    assert user_alias(user) not in registry.aliases(model_name)
    assert [v.version for v in registry.user_versions(other)] == [kept]
    assert registry.aliases(model_name)["production"] == production
    assert [k async for k in redis_client.scan_iter(match=f"{redis_prefix}*{user}:*")] == []

    info = UserInfo.model_validate((await client.get(f"/users/{user}", headers=AUTH)).json())
    assert (info.calibration_datasets, info.corrections, info.personal_model) == ([], 0, None)
    assert not info.review_uncertain
    again = await client.delete(f"/users/{user}", headers=AUTH)
    assert UserDeletion.model_validate(again.json()).datasets == []


async def test_uncertain_frames_are_kept_only_when_opted_in_and_up_to_the_hourly_cap(
    client: httpx.AsyncClient,
    make_settings: SettingsFactory,
    production: str,
    model_name: str,
    user: str,
) -> None:
    form = {"model": model_name, "version": production, "predicted": "sad", "confidence": "0.3"}

    async def offer() -> dict[str, object]:
        files = {"file": ("face.png", crop_png(), "image/png")}
        response = await client.post(f"/users/{user}/review", data=form, files=files, headers=AUTH)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    off = await offer()
    assert off["kept"] is False
    assert "off" in str(off["reason"])
    assert (await client.get(f"/users/{user}/review", headers=AUTH)).json() == []

    await client.put(f"/users/{user}/settings", json={"review_uncertain": True}, headers=AUTH)
    kept = [await offer() for _ in range(20)]  # the default cap is 20 an hour
    assert all(k["kept"] for k in kept)
    over = await offer()
    assert over["kept"] is False
    assert "hour" in str(over["reason"])

    queue = (await client.get(f"/users/{user}/review", headers=AUTH)).json()
    assert len(queue) == 20
    first = queue[0]["id"]
    image = await client.get(f"/users/{user}/review/{first}/image", headers=AUTH)
    assert image.headers["content-type"] == "image/png"
    labelled = await client.post(
        f"/users/{user}/review/{first}", json={"label": "happy"}, headers=AUTH
    )
    assert labelled.status_code == 201, labelled.text
    receipt = CorrectionReceipt.model_validate(labelled.json())
    assert (receipt.correction.label, receipt.correction.source) == ("happy", "review")
    assert receipt.corrections == 1
    assert len((await client.get(f"/users/{user}/review", headers=AUTH)).json()) == 19
    assert (
        await client.get(f"/users/{user}/review/{first}/image", headers=AUTH)
    ).status_code == 404
