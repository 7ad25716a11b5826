"""Monitoring benchmark: what recording every prediction costs the serving hot path.

Two serving processes run side by side on the same model, one recording predictions into Redis
windows (the default) and one with ``CHIMP_SERVING__MONITORING__ENABLED=false``. The runs
alternate between them, several rounds, so a burst of other load on the machine does not
favour one; the table prints every run and the medians:

* predict-image (a 640x480 JPEG with one face) at concurrency 1: p50 latency;
* v2 infer (one 48x48 tensor) at concurrency 16: requests/s;
* with server CPU per request for both (the steadiest figure on a busy machine).

The target is under 3 % apart. It uses benchmarks/serving.py's model, workloads and load
generator (``wrk`` when installed, else httpx), a real ``mlflow server`` subprocess and the Redis
at ``CHIMP_REDIS_URL`` (default 127.0.0.1:6379; its keys go under a unique prefix, removed at
the end).

    .venv/bin/python benchmarks/monitoring.py [--seconds 5] [--rounds 3] [--generator wrk|httpx]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chimp.serving.config import MonitoringConfig
from chimp.serving.recording import PredictionRecorder
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.models import FacePrediction, ModelMetadata
from serving import (  # the sibling benchmark script (this folder is on sys.path)
    EMOTIONS,
    MODEL,
    SPEC,
    LoadResult,
    Workload,
    export_cnn,
    face_jpeg,
    free_port,
    image_workload,
    measure,
    row,
    start,
    start_mlflow,
    stop,
    v2_workload,
    wait_http,
)

REDIS_URL = os.environ.get("CHIMP_REDIS_URL", "redis://127.0.0.1:6379/0")
SETTINGS = {
    "recording on": {},
    "recording off": {"CHIMP_SERVING__MONITORING__ENABLED": "false"},
}


def start_serving(
    workdir: Path, mlflow_url: str, label: str, prefix: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    tag = label.replace(" ", "-")
    env = {
        **os.environ,
        "CHIMP_DATA_DIR": str(workdir / f"serving-{tag}"),
        "CHIMP_MLFLOW__TRACKING_URI": mlflow_url,
        "CHIMP_REDIS_URL": REDIS_URL,
        "CHIMP_MODEL_NAME": MODEL,
        "CHIMP_LOG_LEVEL": "WARNING",
        "CHIMP_SERVING__PORT": str(port),
        "CHIMP_SERVING__MONITORING__KEY_PREFIX": prefix,
        **SETTINGS[label],
    }
    log = workdir / f"serving-{tag}.log"
    proc = start([sys.executable, "-m", "chimp.serving"], env, log, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/ready", proc, log)
    return proc, url


def hot_path_cost(calls: int = 20000) -> None:
    """Microseconds the request path spends recording, and the later counting per call."""
    # A client that never connects: nothing is flushed here.
    recorder = PredictionRecorder(aioredis.Redis.from_url(REDIS_URL), MonitoringConfig())
    face = FacePrediction(scores={}, label="happy", score=0.8)
    logits = np.random.default_rng(0).random((1, len(EMOTIONS)), dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(calls):
        recorder.record_image(MODEL, "1", [face])
    t1 = time.perf_counter()
    for _ in range(calls):
        recorder.record_rows(MODEL, "1", EMOTIONS, logits, probabilities=False)
    t2 = time.perf_counter()
    recorder.collect()  # what the flush task does every few seconds, off the request path
    t3 = time.perf_counter()
    print(
        f"in-process recording per request: predict-image {1e6 * (t1 - t0) / calls:.2f} us, "
        f"v2 infer {1e6 * (t2 - t1) / calls:.2f} us; counting later in the flush task "
        f"{1e6 * (t3 - t2) / calls:.2f} us per v2 answer"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--generator",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
    )
    args = parser.parse_args()
    print(
        f"cores: {os.cpu_count()}, onnxruntime {ort.__version__}, load generator: "
        f"{args.generator}, rounds: {args.rounds} x {args.seconds:g} s"
    )
    hot_path_cost()
    prefix = f"chimp-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="chimp-bench-") as tmp:
        workdir = Path(tmp)
        onnx_path = export_cnn(workdir / "cnn.onnx", seed=1)
        runs: list[tuple[str, Workload, int]] = [
            ("predict-image", image_workload(face_jpeg()), 1),
            ("v2 infer", v2_workload(), 16),
        ]
        mlflow, mlflow_url = start_mlflow(workdir)
        results: dict[tuple[str, str], list[LoadResult]] = {}
        try:
            registry = ModelRegistry(mlflow_url, experiment="bench")
            metadata = ModelMetadata(task="face-classification", labels=EMOTIONS, input=SPEC)
            version = registry.log_model_version(MODEL, onnx_path, metadata).version
            registry.set_alias(MODEL, PRODUCTION, version)
            servers = {s: start_serving(workdir, mlflow_url, s, prefix) for s in SETTINGS}
            print(f"load average before: {os.getloadavg()}")
            print("| run                                  |    req/s | p50 ms  | p99 ms  "
                  "| srv CPU ms/req | fail |")  # fmt: skip
            print("|--------------------------------------|---------:|--------:|--------:"
                  "|--------:|-----:|")  # fmt: skip
            try:
                for _ in range(args.rounds):
                    for name, work, c in runs:
                        for setting, (proc, url) in servers.items():
                            result = measure(
                                args.generator, url, proc.pid, work, c, args.seconds, workdir
                            )
                            results.setdefault((name, setting), []).append(result)
                            print(row(f"{name} c={c} ({setting})", result), flush=True)
            finally:
                for proc, _ in servers.values():
                    stop(proc)
            print(f"load average after: {os.getloadavg()}")
        finally:
            stop(mlflow)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*"))
            recorded = len(keys)
            if keys:
                client.delete(*keys)
            client.close()

    def median(name: str, setting: str, what: str) -> float:
        values = [getattr(r, what) for r in results[(name, setting)]]
        return float(statistics.median(values))

    print(f"\nmedians of {args.rounds} rounds (recording wrote {recorded} Redis keys):")
    for name, what, unit in (
        ("predict-image", "p50_ms", "ms p50 at c=1"),
        ("v2 infer", "rps", "req/s at c=16"),
        ("predict-image", "cpu_ms_per_request", "server CPU ms/request at c=1"),
        ("v2 infer", "cpu_ms_per_request", "server CPU ms/request at c=16"),
    ):
        on, off = median(name, "recording on", what), median(name, "recording off", what)
        print(f"  {name:<14} {unit:<32} on {on:8.2f}  off {off:8.2f}  "
              f"({100 * (on - off) / off:+.1f} %)")  # fmt: skip


if __name__ == "__main__":
    main()
