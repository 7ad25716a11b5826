"""Is a port free? Checked for every service before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass

from chimp.stack.spec import ServiceSpec


@dataclass(frozen=True)
class PortConflict:
    service: str
    host: str
    port: int
    flag: str
    env: str
    taken_by: str | None = None

    def message(self) -> str:
        user = f"{self.taken_by} (same port)" if self.taken_by else "another program"
        return (
            f"port {self.port} on {self.host} is already used by {user}, so {self.service} "
            "cannot start. "
            f"Stop what is using it, or choose another port with {self.flag} PORT "
            f"(or the setting {self.env})."
        )


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR like uvicorn and redis do: sockets of a stack that just stopped linger in
        # TIME_WAIT and do not stop a new server, so they must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_conflicts(specs: Iterable[ServiceSpec], host: str) -> list[PortConflict]:
    conflicts: list[PortConflict] = []
    claimed: dict[int, str] = {}
    for spec in specs:
        if spec.port is None:
            continue
        setting = spec.port
        other = claimed.get(setting.port)
        if other is not None or not port_is_free(host, setting.port):
            conflicts.append(
                PortConflict(spec.name, host, setting.port, setting.flag, setting.env, other)
            )
        claimed.setdefault(setting.port, spec.name)
    return conflicts
