"""The continual loop against real Redis, a real ``mlflow server`` and the training worker.

The cron job's function is called directly (as arq would every ``loop_interval_s``); the
re-calibrations it starts run in a real worker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool
from pydantic import SecretStr

from chimp.shared.registry import PRODUCTION, ModelRegistry, user_alias
from chimp.shared.registry.layout import TAG_BASE_VERSION
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.schemas.tasks import TaskStatus
from chimp.shared.schemas.users import LoopStatus, UserInfo
from chimp.training.config import TrainingSettings
from chimp.training.jobs import WorkerContext, deserialize_job, serialize_job
from chimp.training.worker import continual_loop, loop_schedule, shutdown, startup
from tests.training.conftest import SettingsFactory, api_client, running_worker, wait_for_task
from tests.training.corrections import AUTH, TOKEN, correct, correction_form, crop_png
from tests.training.synthetic import EMOTIONS, write_folder_dataset, zip_folder

SPEC = InputSpec(height=48, width=48, channels=1, color="gray")
FAST: dict[str, int | float | str | bool] = {"mode": "calibrate", "epochs": 1, "batch_size": 16}


def compact_onnx(path: Path, seed: int = 0) -> Path:
    """A real (untrained) CompactCNN, so calibration can fine-tune from it."""
    import torch

    from chimp.training.plugins.builtin import classifier

    torch.manual_seed(seed)
    return classifier.export_onnx(classifier.CompactCNN(1, len(EMOTIONS)), SPEC, path)


def register_production(
    registry: ModelRegistry, name: str, tmp: Path, dataset: str, seed: int = 0
) -> str:
    meta = ModelMetadata(
        task="face-classification",
        labels=EMOTIONS,
        input=SPEC,
        dataset=dataset,
        plugin="emotion_recognition",
    )
    path = compact_onnx(tmp / f"prod-{seed}.onnx", seed)
    version = registry.log_model_version(name, path, meta).version
    registry.set_alias(name, PRODUCTION, version)
    return version


@pytest.fixture
def user() -> str:
    return f"ann{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(make_settings: SettingsFactory, mlflow_uri: str, model_name: str) -> TrainingSettings:
    made = make_settings(
        mlflow_uri=mlflow_uri,
        feedback_threshold=3,
        shared_feedback_threshold=1000,
        replay_images=14,
        recalibration_arguments=FAST,
        loop_retry_s=600,
    )
    made.auth.token = SecretStr(TOKEN)
    made.model_name = model_name
    return made


@pytest.fixture
async def client(
    settings: TrainingSettings, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings) as http:
        http.headers.update(AUTH)  # tasks, users and the loop all hold people's data
        yield http


@pytest.fixture
async def loop_ctx(settings: TrainingSettings) -> AsyncIterator[WorkerContext]:
    """The worker's context as arq builds it, for calling the cron function directly."""
    pool: ArqRedis = await create_pool(
        RedisSettings.from_dsn(settings.redis_url),
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=settings.training.queue_name,
    )
    ctx: WorkerContext = {"redis": pool, "settings": settings}
    await startup(ctx)
    try:
        yield ctx
    finally:
        await shutdown(ctx)
        await pool.aclose()


@pytest.fixture
async def shared_dataset(client: httpx.AsyncClient, tmp_path: Path) -> str:
    folder = write_folder_dataset(tmp_path / "shared", per_label=4)
    with zip_folder(folder, tmp_path / "shared.zip").open("rb") as fh:
        response = await client.post(
            "/datasets",
            data={"dataset_name": "shared-faces"},
            files={"file": ("s.zip", fh, "application/zip")},
            headers=AUTH,
        )
    assert response.status_code == 201, response.text
    return "shared-faces"


async def loop_status(client: httpx.AsyncClient) -> LoopStatus:
    response = await client.get("/loop", headers=AUTH)
    assert response.status_code == 200, response.text
    return LoopStatus.model_validate(response.json())


def entry_of(status: LoopStatus, user: str) -> Any:
    return next(e for e in status.entries if e.user_id == user)


def test_the_cron_schedule_follows_the_interval() -> None:
    assert loop_schedule(60) == {"second": 0, "minute": set(range(60))}
    assert loop_schedule(15) == {"second": {0, 15, 30, 45}, "minute": None}
    assert loop_schedule(300)["minute"] == {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55}


async def test_the_threshold_of_corrections_starts_a_recalibration_through_the_cron_job(
    client: httpx.AsyncClient,
    settings: TrainingSettings,
    loop_ctx: WorkerContext,
    registry: ModelRegistry,
    model_name: str,
    shared_dataset: str,
    user: str,
    tmp_path: Path,
) -> None:
    production = register_production(registry, model_name, tmp_path, shared_dataset)
    form = correction_form(production, model_name)
    for n in range(2):
        assert (await correct(client, user, form, crop_png(n))).status_code == 201
    waiting = entry_of(await loop_status(client), user)
    assert (waiting.state, waiting.reason) == ("waiting", "2 of 3 corrections")
    await continual_loop(loop_ctx)
    assert entry_of(await loop_status(client), user).state == "waiting"  # nothing started

    assert (await correct(client, user, form, crop_png(2))).status_code == 201
    ready = entry_of(await loop_status(client), user)
    assert ready.state == "ready"
    assert "3 new corrections (threshold 3)" in ready.reason

    started = await continual_loop(loop_ctx)
    [run] = started["running"]
    assert run["user_id"] == user
    again = await continual_loop(loop_ctx)  # at most one run per user at a time
    assert [r["task_id"] for r in again["running"]] == [run["task_id"]]

    async with running_worker(settings):
        task = await wait_for_task(client, run["task_id"], timeout_s=300)
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert task.user_id == user
    assert task.result is not None
    assert task.result["train_images"] + task.result["test_images"] >= 3 + 14  # + replay

    info = UserInfo.model_validate((await client.get(f"/users/{user}", headers=AUTH)).json())
    assert info.personal_model is not None
    assert info.personal_model.base_version == production
    version = registry.get_version(model_name, info.personal_model.version)
    assert version.tags[TAG_BASE_VERSION] == production
    assert registry.aliases(model_name)[PRODUCTION] == production  # personal stays personal

    await continual_loop(loop_ctx)  # folds the finished run in: those corrections are used
    settled = entry_of(await loop_status(client), user)
    assert (settled.state, settled.reason) == ("waiting", "0 of 3 corrections")
    after = UserInfo.model_validate((await client.get(f"/users/{user}", headers=AUTH)).json())
    assert after.pending_corrections == 0


async def test_a_failed_run_is_retried_later_with_backoff_not_at_once(
    client: httpx.AsyncClient,
    make_settings: SettingsFactory,
    settings: TrainingSettings,
    loop_ctx: WorkerContext,
    registry: ModelRegistry,
    model_name: str,
    shared_dataset: str,
    user: str,
    tmp_path: Path,
) -> None:
    production = register_production(registry, model_name, tmp_path, shared_dataset)
    for n in range(3):
        response = await correct(client, user, correction_form(production, model_name), crop_png(n))
        assert response.status_code == 201
    # A run that cannot succeed: the plugin's bounds refuse a negative learning rate, so the
    # training service refuses the task before anything is queued.
    loop_ctx["loop"].settings.training.recalibration_arguments = {**FAST, "learning_rate": -1.0}
    assert (await continual_loop(loop_ctx))["running"] == []
    entry = entry_of(await loop_status(client), user)
    assert entry.state == "backoff"
    assert entry.retry_at is not None
    assert "failed 1x" in entry.reason
    assert (await continual_loop(loop_ctx))["running"] == []  # still waiting it out


async def test_a_production_move_recalibrates_stale_personal_models_through_the_personal_gate(
    client: httpx.AsyncClient,
    settings: TrainingSettings,
    loop_ctx: WorkerContext,
    registry: ModelRegistry,
    model_name: str,
    shared_dataset: str,
    user: str,
    tmp_path: Path,
) -> None:
    first_production = register_production(registry, model_name, tmp_path, shared_dataset)
    calibration = f"calib-{user}-1700000000000"
    frames = write_folder_dataset(tmp_path / "calib", per_label=6, seed=3)
    with zip_folder(frames, tmp_path / "calib.zip").open("rb") as fh:
        uploaded = await client.post(
            "/datasets",
            data={"dataset_name": calibration},
            files={"file": ("c.zip", fh, "application/zip")},
            headers=AUTH,
        )
    assert uploaded.status_code == 201, uploaded.text
    async with running_worker(settings):
        response = await client.post(
            "/tasks/run/emotion_recognition",
            json={"arguments": FAST, "datasets": {"train": calibration}, "user_id": user},
            headers=AUTH,
        )
        assert response.status_code == 202, response.text
        first = await wait_for_task(client, response.json()["task_id"], timeout_s=300)
        assert first.status is TaskStatus.SUCCEEDED, first.error
        assert first.result is not None
        assert first.result["decision"]["verdict"] == "first"
        personal = registry.aliases(model_name)[user_alias(user)]
        assert registry.get_version(model_name, personal).tags[TAG_BASE_VERSION] == (
            first_production
        )

        new_production = register_production(registry, model_name, tmp_path, shared_dataset, seed=1)
        ready = entry_of(await loop_status(client), user)
        assert ready.state == "ready"
        assert f"production moved to v{new_production}" in ready.reason
        [run] = (await continual_loop(loop_ctx))["running"]
        task = await wait_for_task(client, run["task_id"], timeout_s=300)
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert task.result is not None
    decision = task.result["decision"]
    assert decision["baseline_version"] == personal
    assert decision["verdict"] in ("promoted", "rejected")
    assert "user_accuracy" in decision["metrics"]
    now = registry.aliases(model_name)[user_alias(user)]
    if decision["verdict"] == "promoted":
        assert registry.get_version(model_name, now).tags[TAG_BASE_VERSION] == new_production
    else:
        assert now == personal  # the user keeps the model they have
    # Tried once for this production version: not again and again.
    assert (await continual_loop(loop_ctx))["running"] == []
    assert entry_of(await loop_status(client), user).state == "waiting"


def shared_entry(status: LoopStatus) -> Any:
    return next(e for e in status.entries if e.kind == "shared-retraining")


async def test_corrections_from_everyone_start_a_shared_retraining_through_the_gate(
    client: httpx.AsyncClient,
    settings: TrainingSettings,
    loop_ctx: WorkerContext,
    registry: ModelRegistry,
    model_name: str,
    shared_dataset: str,
    tmp_path: Path,
) -> None:
    config = settings.training  # the API's and the cron job's settings alike
    config.shared_feedback_threshold = 4
    config.feedback_threshold = 1000  # no one is due a re-calibration of their own
    config.retraining_arguments = {"mode": "train", "epochs": 1, "batch_size": 16}
    production = register_production(registry, model_name, tmp_path, shared_dataset)
    form = correction_form(production, model_name)
    ann, bo = f"ann{uuid.uuid4().hex[:8]}", f"bo{uuid.uuid4().hex[:8]}"
    for n, person in enumerate([ann, ann, bo]):
        assert (await correct(client, person, form, crop_png(n))).status_code == 201
    waiting = shared_entry(await loop_status(client))
    assert (waiting.state, waiting.reason) == ("waiting", "3 of 4 corrections from everyone")
    assert (await continual_loop(loop_ctx))["running"] == []

    assert (await correct(client, bo, form, crop_png(3))).status_code == 201
    ready = shared_entry(await loop_status(client))
    assert (ready.state, ready.reason) == ("ready", "4 new corrections (threshold 4)")
    [run] = (await continual_loop(loop_ctx))["running"]
    assert (run["kind"], run["user_id"]) == ("shared-retraining", None)
    again = await continual_loop(loop_ctx)  # one shared retraining at a time
    assert [r["task_id"] for r in again["running"]] == [run["task_id"]]

    async with running_worker(settings):
        task = await wait_for_task(client, run["task_id"], timeout_s=300)
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert task.user_id is None
    assert task.datasets == {"train": shared_dataset}  # production's own dataset ...
    assert task.result is not None
    shared_images = 4 * len(EMOTIONS)
    assert task.result["train_images"] + task.result["test_images"] == shared_images + 4
    # ... plus both people's corrections, and the shared gate decides, as for any candidate.
    decision = task.result["decision"]
    assert decision["baseline_version"] == production
    assert decision["verdict"] in ("promoted", "rejected")
    now = registry.aliases(model_name)[PRODUCTION]
    promoted = decision["verdict"] == "promoted"
    assert now == (decision["candidate_version"] if promoted else production)

    await continual_loop(loop_ctx)  # folds the finished run in: those corrections are used
    settled = shared_entry(await loop_status(client))
    assert (settled.state, settled.reason) == ("waiting", "0 of 4 corrections from everyone")
