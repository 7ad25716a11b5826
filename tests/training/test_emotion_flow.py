"""The user flow end to end: upload a dataset to S3, train emotion_recognition through the API
and through ``chimp-train run``, find the version in MLflow with metrics, labels and ONNX."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import redis.asyncio as aioredis
from mlflow import MlflowClient

from chimp.shared.schemas.monitoring import REFERENCE_TAG, PredictionReference
from chimp.shared.schemas.tasks import TaskInfo, TaskStatus
from chimp.shared.settings import DatastoreConfig
from chimp.training.config import TrainingSettings
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.s3 import make_s3_config
from tests.training.conftest import SettingsFactory, api_client, running_worker, wait_for_task
from tests.training.synthetic import EMOTIONS, write_folder_dataset, zip_folder

pytestmark = pytest.mark.slow


@pytest.fixture
def flow_settings(
    make_settings: SettingsFactory, mlflow_uri: str, s3_endpoint: str, model_name: str
) -> TrainingSettings:
    settings = make_settings(
        mlflow_uri=mlflow_uri,
        datastore=DatastoreConfig(backend="s3", s3=make_s3_config(s3_endpoint)),
    )
    settings.model_name = model_name
    return settings


@pytest.fixture
def dataset_zip(tmp_path: Path) -> Path:
    folder = write_folder_dataset(tmp_path / "faces", per_label=6, test_per_label=2)
    return zip_folder(folder, tmp_path / "faces.zip")


async def test_train_through_the_api_registers_a_production_version(
    flow_settings: TrainingSettings,
    dataset_zip: Path,
    model_name: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    async with api_client(flow_settings) as client, running_worker(flow_settings):
        with dataset_zip.open("rb") as fh:
            uploaded = await client.post(
                "/datasets",
                files={"file": ("faces.zip", fh, "application/zip")},
                data={"dataset_name": "faces"},
            )
        assert uploaded.status_code == 201, uploaded.text
        # Two epochs on 42 images may not beat chance by the default margin: no floor here.
        policy = await client.put(f"/models/{model_name}/policy", json={"min_value": 0})
        assert policy.status_code == 200, policy.text
        response = await client.post(
            "/tasks/run/emotion_recognition",
            json={
                "arguments": {"epochs": 2, "batch_size": 16, "learning_rate": 0.002},
                "datasets": {"train": "faces"},
            },
        )
        assert response.status_code == 202, response.text
        seen: list[TaskInfo] = []
        task = await wait_for_task(client, response.json()["task_id"], seen=seen, timeout_s=300)
        assert task.status is TaskStatus.SUCCEEDED, task.error
        progress = [t.progress for t in seen]
        assert progress[0] < 0.5
        assert progress[-1] == 1.0
        assert any(0 < p < 1 for p in progress)
        assert task.result is not None
        assert task.result["train_images"] == 42
        assert task.result["test_images"] == 14
        (model,) = task.result["models"]
        assert model["aliases"] == ["production"]

        versions = (await client.get(f"/models/{model_name}/versions")).json()
        assert [v["version"] for v in versions] == [model["version"]]
        version = versions[0]
        assert version["metadata"]["labels"] == EMOTIONS
        assert version["metadata"]["input"]["height"] == 48
        assert version["metadata"]["dataset"] == "faces"
        # Its monitoring reference went to the registry with it: serving reads it from there.
        reference = PredictionReference.model_validate_json(version["tags"][REFERENCE_TAG])
        assert reference.count == 14
        assert set(reference.label_counts) == set(EMOTIONS)
        metrics = version["metrics"]
        assert {"test_accuracy", "train_loss", "val_accuracy", "macro_f1", "recall_happy"} <= set(
            metrics
        )
        # The version comes from the task's own run: its params were logged at the start and
        # each epoch's loss and accuracy once, as the epoch ended.
        mlflow = MlflowClient(flow_settings.mlflow.tracking_uri)
        run = mlflow.get_run(version["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["chimp.task_id"] == task.task_id
        assert run.data.params["arguments.epochs"] == "2"
        assert run.data.params["datasets.train"] == "faces"
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            points = mlflow.get_metric_history(version["run_id"], key)
            assert sorted(p.step for p in points) == [0, 1], key
        artifacts = {
            a["path"]
            for a in (
                await client.get(f"/models/{model_name}/versions/{model['version']}/artifacts")
            ).json()
        }
        assert {"model/model.onnx", "confusion_matrix.png", "training_curves.png"} <= artifacts
        png = await client.get(
            f"/models/{model_name}/versions/{model['version']}/artifacts/confusion_matrix.png"
        )
        assert png.headers["content-type"] == "image/png"
        image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape[0] > 100

        onnx_file = await client.get(
            f"/models/{model_name}/versions/{model['version']}/artifacts/model/model.onnx"
        )
        (tmp_path / "m.onnx").write_bytes(onnx_file.content)
        session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
        batch = np.zeros((3, 1, 48, 48), np.float32)
        assert session.run(None, {"input": batch})[0].shape == (3, 7)

        # Roll back / promote through the API: the alias moves in the registry.
        moved = await client.post(
            f"/models/{model_name}/aliases/staging", json={"version": model["version"]}
        )
        assert moved.status_code == 200
        assert sorted(moved.json()["aliases"]) == ["production", "staging"]
        listed = {m["name"]: m for m in (await client.get("/models")).json()}
        assert listed[model_name]["aliases"] == {
            "production": model["version"], "staging": model["version"]
        }  # fmt: skip


@pytest.fixture
def served_api(flow_settings: TrainingSettings, tmp_path: Path) -> Iterator[str]:
    """``chimp-train serve`` as a real process on a free port, configured through env."""
    port = free_port()
    s3 = flow_settings.datastore.s3
    assert s3.access_key_id is not None
    assert s3.secret_access_key is not None
    env = {
        **os.environ,
        "CHIMP_REDIS_URL": flow_settings.redis_url,
        "CHIMP_MODEL_NAME": flow_settings.model_name,
        "CHIMP_MLFLOW__TRACKING_URI": flow_settings.mlflow.tracking_uri,
        "CHIMP_MLFLOW__EXPERIMENT": flow_settings.mlflow.experiment,
        "CHIMP_DATASTORE__BACKEND": "s3",
        "CHIMP_DATASTORE__S3__ENDPOINT_URL": str(s3.endpoint_url),
        "CHIMP_DATASTORE__S3__BUCKET": s3.bucket,
        "CHIMP_DATASTORE__S3__ACCESS_KEY_ID": s3.access_key_id.get_secret_value(),
        "CHIMP_DATASTORE__S3__SECRET_ACCESS_KEY": s3.secret_access_key.get_secret_value(),
        "CHIMP_TRAINING__QUEUE_NAME": flow_settings.training.queue_name,
        "CHIMP_TRAINING__KEY_PREFIX": flow_settings.training.key_prefix,
        "CHIMP_TRAINING__PORT": str(port),
        "CHIMP_AUTH__TOKEN": "cli-token",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "chimp.training.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def _cli(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIMP_AUTH__TOKEN": "cli-token"}
    command = [sys.executable, "-m", "chimp.training.cli", "--url", url, *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


async def test_cli_uploads_runs_calibration_and_reports_failure(
    flow_settings: TrainingSettings,
    served_api: str,
    dataset_zip: Path,
    model_name: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    async with running_worker(flow_settings):
        uploaded = await _cli("datasets", "upload", "faces", str(dataset_zip), url=served_api,
                              cwd=tmp_path)  # fmt: skip
        assert uploaded.returncode == 0, uploaded.stderr
        listed = await _cli("datasets", "list", url=served_api, cwd=tmp_path)
        assert listed.stdout.startswith("faces\t")
        plugins = await _cli("plugins", url=served_api, cwd=tmp_path)
        assert "emotion_recognition 1.0.0" in plugins.stdout

        # A calibration with no production model yet trains from scratch and becomes the
        # user's model only: one person's frames never become everyone's model.
        run = await _cli(
            "run", "emotion_recognition", "--arg", "epochs=1", "--arg", "batch_size=32",
            "--arg", "mode=calibrate", "--dataset", "train=faces", "--user", "ann", "--json",
            url=served_api, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "100.0%" in run.stderr
        assert json.loads(run.stdout)["result"]["mode"] == "calibrate"

        async with httpx.AsyncClient(
            base_url=served_api, headers={"Authorization": "Bearer cli-token"}
        ) as client:
            versions = (await client.get(f"/models/{model_name}/versions")).json()
        assert versions[0]["aliases"] == ["user-ann"]

        # A shared run ends with the evaluation gate's verdict and reason.
        shared = await _cli(
            "run", "emotion_recognition", "--arg", "epochs=1", "--arg", "batch_size=32",
            "--dataset", "train=faces", url=served_api, cwd=tmp_path,
        )  # fmt: skip
        assert shared.returncode == 0, shared.stderr
        assert re.search(r"verdict: (first|rejected) - ", shared.stdout), shared.stdout
        # One champion at most: nothing to roll back to, said clearly.
        rollback = await _cli("models", "rollback", model_name, url=served_api, cwd=tmp_path)
        assert rollback.returncode == 2  # a 409: nothing to fix but the request
        assert "roll back" in rollback.stderr

        bad = await _cli("run", "emotion_recognition", "--arg", "epochs=many",
                         "--dataset", "train=faces", url=served_api, cwd=tmp_path)  # fmt: skip
        assert bad.returncode == 2
        assert "epochs" in bad.stderr

        failing = await _cli("run", "example", "--arg", "greeting=x", "--arg", "fail=true",
                             url=served_api, cwd=tmp_path)  # fmt: skip
        assert failing.returncode == 1
        assert "error: RuntimeError: example failure" in failing.stdout
