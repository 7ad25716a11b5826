"""The evaluation gate through the real parts: training API, worker, Redis, ``mlflow server``,
and serving answering with whatever production is."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from chimp.shared.schemas.tasks import TaskInfo, TaskStatus
from chimp.training.config import TrainingSettings
from tests.serving.conftest import serve, serving_settings
from tests.training.conftest import SettingsFactory, api_client, running_worker, wait_for_task
from tests.training.synthetic import pattern, write_folder_dataset, zip_folder

pytestmark = pytest.mark.slow

LABELS = ["angry", "happy", "sad", "surprise"]
TEMPLATE_PLUGIN = Path(__file__).with_name("template_plugin.py")


@pytest.fixture
def gate_settings(
    make_settings: SettingsFactory, mlflow_uri: str, tmp_path: Path
) -> TrainingSettings:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(TEMPLATE_PLUGIN, plugins / "template_plugin.py")
    return make_settings(mlflow_uri=mlflow_uri, plugin_dir=plugins)


def faces_dataset(folder: Path, *, permutation: dict[str, str] | None = None) -> Path:
    """24 px patterns per label; ``permutation`` renames every label folder (same images)."""
    root = write_folder_dataset(folder, per_label=30, labels=LABELS, size=24, seed=3)
    if permutation:
        train = root / "train"
        for old in LABELS:
            (train / old).rename(train / f"tmp-{old}")
        for old, new in permutation.items():
            (train / f"tmp-{old}").rename(train / new)
    return root


async def upload(client: httpx.AsyncClient, name: str, folder: Path) -> None:
    archive = zip_folder(folder, folder.with_suffix(".zip"))
    with archive.open("rb") as fh:
        response = await client.post(
            "/datasets",
            files={"file": (archive.name, fh, "application/zip")},
            data={"dataset_name": name},
        )
    assert response.status_code in (200, 201), response.text


async def train(client: httpx.AsyncClient, model: str, dataset: str, **extra: Any) -> TaskInfo:
    arguments = {"model_name": model, "swap": extra.pop("swap", 0)}
    body = {"arguments": arguments, "datasets": {"train": dataset}, **extra}
    response = await client.post("/tasks/run/template", json=body)
    assert response.status_code == 202, response.text
    task = await wait_for_task(client, response.json()["task_id"])
    assert task.status is TaskStatus.SUCCEEDED, task.error
    return task


def decision(task: TaskInfo) -> dict[str, Any]:
    assert task.result is not None
    found: dict[str, Any] = task.result["decision"]
    return found


async def aliases(client: httpx.AsyncClient, model: str) -> dict[str, str]:
    response = await client.get("/models")
    assert response.status_code == 200, response.text
    for entry in response.json():
        if entry["name"] == model:
            found: dict[str, str] = entry["aliases"]
            return found
    return {}


def pattern_png(label: str) -> bytes:
    import numpy as np

    image = pattern(LABELS.index(label), 24, np.random.default_rng(99))
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


async def served_version(serving: httpx.AsyncClient, model: str, want: str) -> str:
    """The version serving answers with, once it is ``want`` (serving polls the registry)."""
    answered = ""
    for _ in range(200):
        response = await serving.post(
            f"/models/{model}/predict-image",
            content=pattern_png("happy"),
            headers={"content-type": "image/png"},
        )
        if response.status_code == 200:
            answered = response.json()["model"]["version"]
            if answered == want:
                break
        await asyncio.sleep(0.1)
    return answered


@pytest.fixture
async def stack(
    gate_settings: TrainingSettings, redis_client: object, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(gate_settings) as client, running_worker(gate_settings):
        await upload(client, "faces", faces_dataset(tmp_path / "faces"))
        yield client


async def test_a_better_model_is_promoted_by_itself_and_serving_answers_with_it(
    stack: httpx.AsyncClient, model_name: str, mlflow_uri: str, tmp_path: Path
) -> None:
    first = await train(stack, model_name, "faces", swap=1)
    assert decision(first)["verdict"] == "first", decision(first)["reason"]
    assert await aliases(stack, model_name) == {"production": "1"}

    better = await train(stack, model_name, "faces", swap=0)
    verdict = decision(better)
    assert verdict["verdict"] == "promoted", verdict["reason"]
    assert verdict["candidate_version"] == "2"
    assert verdict["baseline_version"] == "1"
    accuracy = verdict["metrics"]["accuracy"]
    assert accuracy["candidate"] > accuracy["baseline"]
    assert await aliases(stack, model_name) == {"production": "2"}

    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as serving:
        assert await served_version(serving, model_name, "2") == "2"

    version = (await stack.get(f"/models/{model_name}/versions/2")).json()
    assert version["decision"]["verdict"] == "promoted"  # the evidence stays with the version
    files = (await stack.get(f"/models/{model_name}/versions/2/artifacts")).json()
    assert "evaluation/decision.json" in {f["path"] for f in files}


async def test_a_worse_model_lands_in_staging_with_a_reason_naming_both_metrics(
    stack: httpx.AsyncClient, model_name: str
) -> None:
    await train(stack, model_name, "faces", swap=0)
    worse = await train(stack, model_name, "faces", swap=1)
    verdict = decision(worse)
    assert verdict["verdict"] == "rejected"
    accuracy = verdict["metrics"]["accuracy"]
    assert accuracy["candidate"] < accuracy["baseline"]
    reason = verdict["reason"]
    assert f"accuracy {accuracy['candidate']:.3f}".rstrip("0") in reason
    assert "worse" in reason
    assert await aliases(stack, model_name) == {"production": "1", "staging": "2"}


async def test_an_equal_model_is_not_promoted(stack: httpx.AsyncClient, model_name: str) -> None:
    await train(stack, model_name, "faces", swap=0)
    same = await train(stack, model_name, "faces", swap=0)
    verdict = decision(same)
    assert verdict["verdict"] == "rejected"
    assert verdict["metrics"]["accuracy"]["candidate"] == verdict["metrics"]["accuracy"]["baseline"]
    assert "not better" in verdict["reason"]
    assert (await aliases(stack, model_name))["production"] == "1"


async def test_a_candidate_trained_on_permuted_labels_is_rejected(
    stack: httpx.AsyncClient, model_name: str, tmp_path: Path
) -> None:
    shifted = dict(zip(LABELS, LABELS[1:] + LABELS[:1], strict=True))
    await upload(stack, "faces-permuted", faces_dataset(tmp_path / "perm", permutation=shifted))
    await train(stack, model_name, "faces", swap=0)
    permuted = await train(stack, model_name, "faces-permuted", swap=0)
    verdict = decision(permuted)
    assert verdict["verdict"] == "rejected", verdict["reason"]
    # Judged on the champion's held-out data, with the labels that earned it production.
    assert verdict["evaluation"]["name"] == "held-out data of version 1"
    assert verdict["metrics"]["accuracy"]["candidate"] < 0.5
    assert (await aliases(stack, model_name))["production"] == "1"


async def test_a_calibration_with_no_production_version_leaves_production_unset(
    stack: httpx.AsyncClient, model_name: str
) -> None:
    task = await train(stack, model_name, "faces", user_id="ann")
    assert task.result is not None
    assert task.result["decision"]["verdict"] == "first"  # the personal gate's: their first
    assert await aliases(stack, model_name) == {"user-ann": "1"}
    history = (await stack.get(f"/models/{model_name}/history")).json()
    (entry,) = history["entries"]
    assert entry["alias"] == "user-ann"
    assert entry["kind"] == "calibration"
    assert entry["actor"] == "personal-gate"
    assert entry["task_id"] == task.task_id


async def test_a_run_that_asks_not_to_promote_leaves_production_alone(
    stack: httpx.AsyncClient, model_name: str
) -> None:
    await train(stack, model_name, "faces", swap=1)
    better = await train(stack, model_name, "faces", swap=0, promote=False)
    verdict = decision(better)
    assert verdict["verdict"] == "rejected"
    assert "asked not to promote" in verdict["reason"]
    assert await aliases(stack, model_name) == {"production": "1", "staging": "2"}
