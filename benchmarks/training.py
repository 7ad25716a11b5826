"""Training benchmark: emotion_recognition throughput, and the API's task-submit latency.

1. Generates a 2,000-image 48x48 gray dataset (7 classes, folder layout), then runs the
   emotion_recognition plugin in-process for a fixed number of epochs and prints images/s of
   training (epochs x train images / time in the training loop), and wall time of the whole
   plugin run (reading images, training, evaluation, ONNX export and check).
2. Starts ``chimp-train serve`` (uvicorn subprocess, real Redis) and submits ``--submits`` tasks
   of the ``example`` plugin one after another; prints p50/p99 latency of POST /tasks/run.
   No worker runs, the queue and task keys live under a unique prefix and are removed after.

    .venv/bin/python benchmarks/training.py [--images 2000] [--epochs 5] [--submits 300]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.ports import free_port, wait_for_port
from tests.training.synthetic import write_folder_dataset

from chimp.shared.schemas.models import ModelMetadata
from chimp.training.plugins import PluginContext, ProductionModel
from chimp.training.plugins.builtin import classifier
from chimp.training.plugins.builtin.emotion_recognition import (
    EmotionRecognitionPlugin,
)


class NullConnector:
    def get_production_model(
        self, name: str, *, alias: str = "production"
    ) -> ProductionModel | None:
        return None

    def store_model(
        self, name: str, onnx_path: Path, metadata: ModelMetadata | None, **_: Any
    ) -> None:
        self.onnx_path = onnx_path


def bench_training(images: int, epochs: int, batch_size: int) -> None:
    per_label = images // 7
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_folder_dataset(root / "ds", per_label=per_label)
        fit_time = 0.0
        trained = 0
        original_fit = classifier.fit

        def timed_fit(model: Any, train: Any, held_out: Any, config: Any, **kw: Any) -> Any:
            nonlocal fit_time, trained
            start = time.perf_counter()
            history = original_fit(model, train, held_out, config, **kw)
            fit_time = time.perf_counter() - start
            trained = len(train)
            return history

        classifier.fit = timed_fit
        (root / "work").mkdir()
        plugin = EmotionRecognitionPlugin()
        context = PluginContext(
            task_id="bench",
            arguments=plugin.info.validate_arguments({"epochs": epochs, "batch_size": batch_size}),
            datasets={"train": data},
            tmp_dir=root / "work",
            connector=NullConnector(),
            logger=logging.getLogger("bench"),
        )
        start = time.perf_counter()
        result = plugin.run(context)
        wall = time.perf_counter() - start
        classifier.fit = original_fit
    print(
        f"emotion_recognition: {per_label * 7} images (48x48 gray), {epochs} epochs, "
        f"batch {batch_size}, {os.cpu_count()} CPU cores, torch threads "
        f"{__import__('torch').get_num_threads()}"
    )
    print(
        f"  train images/s : {epochs * trained / fit_time:8.0f}  "
        f"({trained} train images, {fit_time:.1f} s in the training loop)"
    )
    print(f"  wall time      : {wall:8.1f} s (read, train, evaluate, export, verify ONNX)")
    print(f"  test accuracy  : {result['test_accuracy']:.3f} on {result['test_images']} held-out")


def bench_submit(submits: int) -> None:
    prefix = f"chimp-bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    redis_url = os.environ.get("CHIMP_REDIS_URL", "redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHIMP_REDIS_URL": redis_url,
            "CHIMP_DATASTORE__LOCAL_PATH": str(Path(tmp) / "datastore"),
            "CHIMP_TRAINING__PORT": str(port),
            "CHIMP_TRAINING__QUEUE_NAME": f"{prefix}:queue",
            "CHIMP_TRAINING__KEY_PREFIX": prefix,
            "CHIMP_LOG_LEVEL": "WARNING",
        }
        env.pop("CHIMP_AUTH__TOKEN", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "chimp.training.cli", "serve"], env=env, cwd=tmp,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(port, timeout=60)
            latencies = []
            body = {"arguments": {"greeting": "hi", "steps": 3}}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(20):  # warm-up
                    client.post("/tasks/run/example", json=body).raise_for_status()
                for _ in range(submits):
                    start = time.perf_counter()
                    client.post("/tasks/run/example", json=body).raise_for_status()
                    latencies.append((time.perf_counter() - start) * 1000)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            client_redis = redis.Redis.from_url(redis_url)
            keys = list(client_redis.scan_iter(match=f"{prefix}*"))
            arq_keys = list(client_redis.scan_iter(match="arq:job:*"))
            if keys:
                client_redis.delete(*keys)
            # Queued job bodies of this run (never executed: no worker listened on its queue).
            for key in arq_keys:
                raw = client_redis.get(key)
                if isinstance(raw, bytes) and prefix.encode() in raw:
                    client_redis.delete(key)
            client_redis.close()
    cuts = statistics.quantiles(latencies, n=100)
    print(f"POST /tasks/run/example ({submits} sequential submits, uvicorn + Redis, no worker)")
    print(
        f"  p50 {cuts[49]:.1f} ms   p99 {cuts[98]:.1f} ms"
        f"   mean {statistics.mean(latencies):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--submits", type=int, default=300)
    args = parser.parse_args()
    bench_training(args.images, args.epochs, args.batch_size)
    bench_submit(args.submits)


if __name__ == "__main__":
    main()
