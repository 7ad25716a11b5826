"""The real training API, training worker and serving API as subprocesses, for browser tests.

Each runs from the project's interpreter with its settings in the environment, isolated by a
unique model name, Redis key prefix/queue, datastore folder and data dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.fixtures.ports import free_port, wait_for_port

TRAINING_API = (
    "import uvicorn, sys; from chimp.training.app import create_app; "
    "from chimp.training.config import TrainingSettings; "
    "uvicorn.run(create_app(TrainingSettings()), host='127.0.0.1', port=int(sys.argv[1]), "
    "log_level='warning', ws='none')"
)
TRAINING_WORKER = (
    "from chimp.training.worker import create_worker; "
    "from chimp.training.config import TrainingSettings; "
    "create_worker(TrainingSettings()).run()"
)
SERVING_API = (
    "import uvicorn, sys; from chimp.serving.app import create_app; "
    "from chimp.serving.config import ServingSettings; "
    "uvicorn.run(create_app(ServingSettings()), host='127.0.0.1', port=int(sys.argv[1]), "
    "log_level='warning', ws='none')"
)


@dataclass(frozen=True)
class RealServices:
    training_url: str
    serving_url: str
    model_name: str
    token: str
    logs: Path


@contextmanager
def _process(code: str, args: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _wait_live(url: str, log: Path, timeout: float = 60) -> None:
    port = int(url.rsplit(":", 1)[1])
    try:
        wait_for_port(port, timeout=timeout)
        httpx.get(url + "/health/live", timeout=10).raise_for_status()
    except (TimeoutError, httpx.HTTPError) as exc:
        raise RuntimeError(f"{url} did not start:\n{log.read_text()[-4000:]}") from exc


@contextmanager
def real_services(
    workdir: Path, *, mlflow_uri: str, redis_url: str, prefix: str, model_name: str
) -> Iterator[RealServices]:
    token = "e2e-" + prefix
    env = {
        **os.environ,
        "CHIMP_DATA_DIR": str(workdir / "data"),
        "CHIMP_REDIS_URL": redis_url,
        "CHIMP_MLFLOW__TRACKING_URI": mlflow_uri,
        "CHIMP_MLFLOW__EXPERIMENT": prefix,
        "CHIMP_DATASTORE__BACKEND": "local",
        "CHIMP_DATASTORE__LOCAL_PATH": str(workdir / "datastore"),
        "CHIMP_MODEL_NAME": model_name,
        "CHIMP_AUTH__TOKEN": token,
        "CHIMP_TRAINING__QUEUE_NAME": f"{prefix}:queue",
        "CHIMP_TRAINING__KEY_PREFIX": prefix,
        "CHIMP_SERVING__MONITORING__KEY_PREFIX": f"{prefix}:monitoring",
        "CHIMP_SERVING__POLL_INTERVAL_S": "0.5",
        "CHIMP_SERVING__RETRY_FAILED_AFTER_S": "2",
        # One training thread each: the CI machine is small and shared.
        "OMP_NUM_THREADS": "1",
    }
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    training_port, serving_port = free_port(), free_port()
    training_url = f"http://127.0.0.1:{training_port}"
    serving_url = f"http://127.0.0.1:{serving_port}"
    with ExitStack() as stack:
        stack.enter_context(
            _process(TRAINING_API, [str(training_port)], env, logs / "training.log")
        )
        stack.enter_context(_process(TRAINING_WORKER, [], env, logs / "worker.log"))
        stack.enter_context(_process(SERVING_API, [str(serving_port)], env, logs / "serving.log"))
        _wait_live(training_url, logs / "training.log")
        _wait_live(serving_url, logs / "serving.log")
        yield RealServices(training_url, serving_url, model_name, token, logs)
