"""Continual-loop benchmark: how long until a person's model answers, and what it knows.

Everything real and in this process (training API, worker, serving API, arq on Redis), with a
``mlflow server`` subprocess and the local datastore:

0. A shared production model is trained on synthetic faces (not timed).
1. **Calibration frames saved -> personal model answering**: a person's 7 emotions x 30 frames
   are uploaded (as the Calibrate page does), a calibration task is started, and serving is
   asked for that person until their personal version answers.
2. **Threshold reached -> re-calibrated model answering**: the person gives
   ``CHIMP_TRAINING__FEEDBACK_THRESHOLD`` corrections; the loop's cron function is called at once
   (a deployment adds up to ``loop_interval_s`` of waiting for the cron tick), and serving is
   asked until the re-calibrated version answers (or the personal gate's verdict if it refused).
3. Accuracy of production and of the personal model on the person's held-out frames and on
   shared evaluation data, with and without replay (a second person calibrates with
   ``replay_images=0``).

The person's faces differ from the shared ones (their label i looks like shared label i+1), so
a personal model has something to learn and something to forget.

    .venv/bin/python benchmarks/continual.py [--frames 30] [--epochs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import redis.asyncio as aioredis
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.mlflow import _mlflow_binary, _stop, _wait_healthy
from tests.fixtures.ports import free_port
from tests.training.synthetic import EMOTIONS, pattern, write_folder_dataset, zip_folder

from chimp.serving.app import create_app as create_serving
from chimp.serving.config import ServingSettings
from chimp.shared.registry import ModelRegistry
from chimp.shared.settings import AuthConfig, DatastoreConfig, MlflowConfig
from chimp.training.app import create_app as create_training
from chimp.training.config import TrainingConfig, TrainingSettings
from chimp.training.evaluation import EvaluationItem, EvaluationSet, score
from chimp.training.jobs import WorkerContext
from chimp.training.splits import image_hash, is_held_out
from chimp.training.worker import continual_loop, create_worker, startup

TOKEN = "bench"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def person_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """This person's face for ``label`` looks like the shared pattern of the next label."""
    return pattern((label + 1) % len(EMOTIONS), 48, rng)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return bytes(data.tobytes())


def calibration_zip(frames: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for index, label in enumerate(EMOTIONS):
            for n in range(frames):
                zf.writestr(f"train/{label}/{n:03d}.png", png(person_image(index, rng)))
    return out.getvalue()


def held_out_frames(frames: int, seed: int) -> EvaluationSet:
    """The person's calibration frames that every run holds out (content hash, 0.2)."""
    rng = np.random.default_rng(seed)
    items = []
    for index, label in enumerate(EMOTIONS):
        for _ in range(frames):
            # As training reads the stored file: decoded to BGR, then hashed.
            image = cv2.imdecode(np.frombuffer(png(person_image(index, rng)), np.uint8), 1)
            assert image is not None
            digest = image_hash(image)
            if is_held_out(digest, 0.2):
                items.append(EvaluationItem(digest, label, image))
    return EvaluationSet("person's held-out frames", items)


def shared_evaluation(per_label: int) -> EvaluationSet:
    rng = np.random.default_rng(99)
    items = []
    for index, label in enumerate(EMOTIONS):
        for _ in range(per_label):
            image = cv2.cvtColor(pattern(index, 48, rng), cv2.COLOR_GRAY2BGR)
            items.append(EvaluationItem(image_hash(image), label, image))
    return EvaluationSet("shared evaluation", items)


@contextlib.contextmanager
def mlflow_server(workdir: Path) -> Any:
    import os
    import subprocess

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "mlflow.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_mlflow_binary(), "server", "--backend-store-uri", f"sqlite:///{workdir}/m.db",
             "--artifacts-destination", str(workdir / "artifacts"), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_healthy(proc, url, log)
        yield url
    finally:
        _stop(proc)


@contextlib.asynccontextmanager
async def app_client(app: Any, base: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base, timeout=60) as client:
            yield client


async def wait_task(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    while True:
        task: dict[str, Any] = (await client.get(f"/tasks/{task_id}", headers=AUTH)).json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
        await asyncio.sleep(0.2)


async def answering(serving: httpx.AsyncClient, model: str, user: str) -> dict[str, Any]:
    probe = png(person_image(0, np.random.default_rng(0)))
    response = await serving.post(
        f"/models/{model}/predict-image",
        params={"user": user},
        content=probe,
        headers={"content-type": "image/png"},
    )
    body: dict[str, Any] = response.json()
    return body.get("model") or {}


async def wait_answer(
    serving: httpx.AsyncClient, model: str, user: str, version: str, timeout: float = 600
) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if (await answering(serving, model, user)).get("version") == version:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"serving never answered {user} with version {version}")


async def calibrate(
    training: httpx.AsyncClient, user: str, frames: int, epochs: int, seed: int
) -> tuple[float, dict[str, Any]]:
    """Upload the frames and start the calibration; returns (frames-saved time, task)."""
    name = f"calib-{user}-{int(time.time() * 1000)}"
    files = {"file": ("c.zip", calibration_zip(frames, seed), "application/zip")}
    uploaded = await training.post(
        "/datasets", data={"dataset_name": name}, files=files, headers=AUTH
    )
    uploaded.raise_for_status()
    saved = time.perf_counter()
    started = await training.post(
        "/tasks/run/emotion_recognition",
        json={
            "arguments": {"mode": "calibrate", "epochs": epochs, "batch_size": 32},
            "datasets": {"train": name},
            "user_id": user,
        },
        headers=AUTH,
    )
    started.raise_for_status()
    return saved, await wait_task(training, started.json()["task_id"])


async def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, mlflow_server(Path(tmp)) as mlflow_uri:
        root = Path(tmp)
        model = f"{prefix}-emotions"
        settings = TrainingSettings(
            _env_file=None,
            data_dir=root / "data",
            redis_url=args.redis,
            model_name=model,
            auth=AuthConfig(token=SecretStr(TOKEN)),
            datastore=DatastoreConfig(backend="local", local_path=root / "datastore"),
            mlflow=MlflowConfig(tracking_uri=mlflow_uri, experiment=prefix),
            training=TrainingConfig(
                queue_name=f"{prefix}:queue",
                key_prefix=prefix,
                poll_interval_s=0.2,
                tmp_dir=root,
                recalibration_arguments={"mode": "calibrate", "epochs": args.epochs,
                                         "batch_size": 32},
            ),
        )  # fmt: skip
        serving_settings = ServingSettings(
            _env_file=None,
            data_dir=root / "serving",  # absolute: serving's model cache needs it
            model_name=model,
            mlflow=MlflowConfig(tracking_uri=mlflow_uri),
        )
        worker = create_worker(settings, handle_signals=False)
        worker_task = asyncio.create_task(worker.async_run())
        try:
            async with (
                app_client(create_training(settings), "http://training") as training,
                app_client(create_serving(serving_settings), "http://serving") as serving,
            ):
                await bench(args, settings, training, serving, model, root)
        finally:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
            await worker.close()
            redis = aioredis.Redis.from_url(args.redis)
            keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


async def bench(
    args: argparse.Namespace,
    settings: TrainingSettings,
    training: httpx.AsyncClient,
    serving: httpx.AsyncClient,
    model: str,
    root: Path,
) -> None:
    shared = zip_folder(write_folder_dataset(root / "shared", per_label=40), root / "s.zip")
    with shared.open("rb") as fh:
        (await training.post("/datasets", data={"dataset_name": "shared-faces"},
                             files={"file": ("s.zip", fh, "application/zip")},
                             headers=AUTH)).raise_for_status()  # fmt: skip
    started = await training.post(
        "/tasks/run/emotion_recognition",
        json={"arguments": {"epochs": args.epochs, "batch_size": 32},
              "datasets": {"train": "shared-faces"}},
        headers=AUTH,
    )  # fmt: skip
    production = await wait_task(training, started.json()["task_id"])
    assert production["status"] == "succeeded", production
    version = production["result"]["models"][0]["version"]
    print(f"production: v{version} trained on shared-faces (7 x 40 images)")

    # 1. calibration frames saved -> personal model answering
    user = "bench-ann"
    saved, task = await calibrate(training, user, args.frames, args.epochs, seed=1)
    assert task["status"] == "succeeded", task.get("error")
    personal = task["result"]["models"][0]["version"]
    served = await wait_answer(serving, model, user, personal)
    print(f"calibration ({7 * args.frames} frames) saved -> personal v{personal} answering: "
          f"{served - saved:.1f} s (target < 30 s)")  # fmt: skip

    # 2. threshold reached -> re-calibrated model answering
    rng = np.random.default_rng(5)
    threshold = settings.training.feedback_threshold
    for n in range(threshold):
        label = n % len(EMOTIONS)
        form = {"label": EMOTIONS[label], "model": model, "version": personal,
                "predicted": EMOTIONS[(label + 3) % 7], "confidence": "0.4"}  # fmt: skip
        files = {"file": ("f.png", png(person_image(label, rng)), "image/png")}
        (await training.post(f"/users/{user}/feedback", data=form, files=files,
                             headers=AUTH)).raise_for_status()  # fmt: skip
    reached = time.perf_counter()
    ctx: WorkerContext = {"redis": training_arq(training), "settings": settings}
    await startup(ctx)
    [run_entry] = (await continual_loop(ctx))["running"]
    recal = await wait_task(training, run_entry["task_id"])
    decision = (recal.get("result") or {}).get("decision") or {}
    if decision.get("verdict") == "promoted":
        version = recal["result"]["models"][0]["version"]
        served = await wait_answer(serving, model, user, version)
        print(
            f"{threshold} corrections reached -> re-calibrated v{version} answering: "
            f"{served - reached:.1f} s (target < 60 s; plus up to one loop interval)"
        )
    else:
        print(
            f"{threshold} corrections reached -> personal gate decided in "
            f"{time.perf_counter() - reached:.1f} s: {decision.get('verdict')} "
            f"({decision.get('reason')}); the person keeps v{personal}"
        )
    await ctx["state"].datastore.close()

    # 3. accuracies, with and without replay
    registry = ModelRegistry(settings.mlflow.tracking_uri, experiment=settings.mlflow.experiment)
    own = held_out_frames(args.frames, seed=1)
    common = shared_evaluation(30)
    settings.training.replay_images = 0
    _, no_replay = await calibrate(training, "bench-bob", args.frames, args.epochs, seed=1)
    rows = [("production", str(production["result"]["models"][0]["version"])),
            ("personal, replay 200", personal),
            ("personal, no replay", no_replay["result"]["models"][0]["version"])]  # fmt: skip
    sizes = f"({len(own)} / {len(common)} images)"
    print(f"{'model':<22} {'own held-out':>13} {'shared eval':>12}   {sizes}")
    for name, version in rows:
        info = registry.get_version(model, version)
        assert info.metadata is not None
        onnx_path = registry.download_onnx(model, version, root / f"eval-{version}")
        mine = score(onnx_path, info.metadata, own)["accuracy"]
        theirs = score(onnx_path, info.metadata, common)["accuracy"]
        print(f"{name + ' v' + version:<22} {mine:>13.3f} {theirs:>12.3f}")


def training_arq(training: httpx.AsyncClient) -> Any:
    app = training._transport.app  # type: ignore[attr-defined]
    return app.state.training.redis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="calibration frames per emotion")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
