"""Settings of ``chimp up``: the ports and timeouts of the local stack.

The service ports are read from the same variables the services themselves use
(``CHIMP_TRAINING__PORT``, ``CHIMP_SERVING__PORT``, ``CHIMP_FRONTEND__PORT``), so one ``.env`` line
moves a service whether it is started by ``chimp up`` or by hand. MLflow and Redis, which are not
our services, get their ports from the ``stack`` section (``CHIMP_STACK__MLFLOW_PORT``, ...).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chimp.shared.settings import ChimpSettings


class _ServicePort(BaseModel):
    # The service's own section carries many more keys (plugin dir, batch size, ...); chimp up
    # only needs the port, and must not reject the rest.
    model_config = ConfigDict(extra="ignore")


class TrainingPort(_ServicePort):
    port: int = Field(default=5253, ge=1, le=65535)


class ServingPort(_ServicePort):
    port: int = Field(default=5254, ge=1, le=65535)


class FrontendPort(_ServicePort):
    port: int = Field(default=5252, ge=1, le=65535)


class StackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Interface every local service binds to.")
    mlflow_port: int = Field(default=8999, ge=1, le=65535)
    redis_port: int = Field(
        default=6379,
        ge=1,
        le=65535,
        description="Port of the redis-server chimp up starts when CHIMP_REDIS_URL is unreachable.",
    )
    ready_timeout_s: float = Field(
        default=180.0, gt=0, description="How long to wait for every service to be ready."
    )
    stop_grace_s: float = Field(
        default=10.0, gt=0, description="How long a service may take to stop before it is killed."
    )
    pretrained: bool = Field(
        default=True,
        description="On a start with no shared production model, register the pretrained "
        "FER2013 model from the data folder's cache (never downloads).",
    )


class StackSettings(ChimpSettings):
    stack: StackConfig = StackConfig()
    training: TrainingPort = TrainingPort()
    serving: ServingPort = ServingPort()
    frontend: FrontendPort = FrontendPort()
