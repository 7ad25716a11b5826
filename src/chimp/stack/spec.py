"""What a supervised service is: data, so the stack is a list that grows with the product."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HttpReady:
    """Ready when ``GET url`` answers 2xx."""

    url: str


@dataclass(frozen=True)
class RedisReady:
    """Ready when Redis at ``url`` answers PING."""

    url: str


Readiness = HttpReady | RedisReady


@dataclass(frozen=True)
class PortSetting:
    """A port a service listens on, and how a user moves it when it is taken."""

    port: int
    flag: str
    env: str


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: tuple[str, ...]
    readiness: Readiness | None
    port: PortSetting | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # Services of a later stage start once every service of the earlier stages is ready: the
    # APIs check MLflow and Redis at start-up, so those come first.
    stage: int = 0
    url: str | None = None
    # A job run once in its stage (registering the pretrained model): the stage is ready when it
    # has exited, and its exit, whatever the code, never stops the stack.
    oneshot: bool = False
