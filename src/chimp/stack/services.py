"""The stack as data: which services ``chimp up`` runs, with their commands, env and ports."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from chimp.stack.config import StackSettings
from chimp.stack.spec import HttpReady, PortSetting, RedisReady, ServiceSpec

INFRA_STAGE = 0
APP_STAGE = 1


class StackError(Exception):
    """A problem that stops ``chimp up`` before anything starts; the message says what to do."""


@dataclass(frozen=True)
class StackPlan:
    """Decisions made before building the specs (what to reuse, where data lives)."""

    data_dir: Path
    redis_url: str
    start_redis: bool


def executable(name: str) -> str:
    """A console script of this installation, preferring the one next to the running Python."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"cannot find the '{name}' command; is CHIMP installed in this env?")
    return found


def client_host(host: str) -> str:
    """Where clients connect when a server binds ``host`` (a wildcard is not an address)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def local_redis_url(settings: StackSettings) -> str:
    return f"redis://{client_host(settings.stack.host)}:{settings.stack.redis_port}/0"


def mlflow_url(settings: StackSettings) -> str:
    return f"http://{client_host(settings.stack.host)}:{settings.stack.mlflow_port}"


def _redis_spec(settings: StackSettings, plan: StackPlan) -> ServiceSpec:
    folder = plan.data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = settings.stack.redis_port
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            f"Redis at {settings.redis_url} is not reachable and there is no 'redis-server' "
            "to start one: install Redis (apt-get install redis-server) or set CHIMP_REDIS_URL."
        )
    return ServiceSpec(
        name="redis",
        argv=(
            binary,
            "--port",
            str(port),
            "--bind",
            client_host(settings.stack.host),
            "--dir",
            str(folder),
            "--save",
            "60 1",
            "--appendonly",
            "no",
        ),
        readiness=RedisReady(plan.redis_url),
        port=PortSetting(port, "--redis-port", "CHIMP_STACK__REDIS_PORT"),
        stage=INFRA_STAGE,
        url=plan.redis_url,
    )


def _mlflow_spec(settings: StackSettings, plan: StackPlan) -> ServiceSpec:
    folder = plan.data_dir / "mlflow"
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    port = settings.stack.mlflow_port
    url = mlflow_url(settings)
    return ServiceSpec(
        name="mlflow",
        argv=(
            executable("mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(artifacts),
            "--serve-artifacts",
            "--host",
            settings.stack.host,
            "--port",
            str(port),
            "--workers",
            "1",
            # Serving polls the registry every few seconds; its access log would drown the rest.
            "--uvicorn-opts",
            "--no-access-log",
        ),
        # Job execution spawns a huey consumer and costs ~1.5 GB; CHIMP does not use it.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        readiness=HttpReady(f"{url}/health"),
        port=PortSetting(port, "--mlflow-port", "CHIMP_STACK__MLFLOW_PORT"),
        stage=INFRA_STAGE,
        url=url,
    )


def _api_spec(
    name: str, argv: tuple[str, ...], section: str, port: int, host: str, flag: str
) -> ServiceSpec:
    url = f"http://{client_host(host)}:{port}"
    key = section.upper()
    return ServiceSpec(
        name=name,
        argv=argv,
        env={f"CHIMP_{key}__PORT": str(port), f"CHIMP_{key}__HOST": host},
        readiness=HttpReady(f"{url}/health/ready"),
        port=PortSetting(port, flag, f"CHIMP_{key}__PORT"),
        stage=APP_STAGE,
        url=url,
    )


def build_specs(settings: StackSettings, plan: StackPlan) -> list[ServiceSpec]:
    """Every service of the local stack, infrastructure first."""
    host = settings.stack.host
    train = executable("chimp-train")
    specs: list[ServiceSpec] = []
    if plan.start_redis:
        specs.append(_redis_spec(settings, plan))
    specs.append(_mlflow_spec(settings, plan))
    specs.append(
        _api_spec(
            "training",
            (train, "serve"),
            "training",
            settings.training.port,
            host,
            "--training-port",
        )
    )
    specs.append(
        ServiceSpec(name="worker", argv=(train, "worker"), readiness=None, stage=APP_STAGE)
    )
    if settings.stack.pretrained:
        # Once MLflow is up: the first start gets a shared model without any training.
        specs.append(
            ServiceSpec(
                name="pretrained",
                argv=(train, "models", "pretrained", "--first-start"),
                readiness=None,
                stage=APP_STAGE,
                oneshot=True,
            )
        )
    specs.append(
        _api_spec(
            "serving",
            (executable("chimp-serving"),),
            "serving",
            settings.serving.port,
            host,
            "--serving-port",
        )
    )
    frontend = _api_spec(
        "frontend",
        (executable("chimp-frontend"),),
        "frontend",
        settings.frontend.port,
        host,
        "--frontend-port",
    )
    specs.append(
        replace(
            frontend,
            env={
                **frontend.env,
                "CHIMP_FRONTEND__TRAINING_URL": f"http://{client_host(host)}:{settings.training.port}",
                "CHIMP_FRONTEND__SERVING_URL": f"http://{client_host(host)}:{settings.serving.port}",
            },
        )
    )
    return specs


def shared_env(settings: StackSettings, plan: StackPlan, token: str) -> dict[str, str]:
    """What every service of the stack is told, on top of the caller's environment."""
    return {
        "CHIMP_DATA_DIR": str(plan.data_dir),
        "CHIMP_REDIS_URL": plan.redis_url,
        "CHIMP_MLFLOW__TRACKING_URI": mlflow_url(settings),
        "CHIMP_AUTH__TOKEN": token,
        # Log lines must reach the prefixer as they are written, not when a buffer fills.
        "PYTHONUNBUFFERED": "1",
    }
