"""One supervised child: its own process group, its log lines prefixed, a clean stop.

Each service runs in a new session, so the terminal's Ctrl-C reaches only ``chimp up``, which
then stops the services itself in a known order; and stopping a service signals its whole group
(``mlflow server`` and uvicorn reloaders have children of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from typing import TextIO

from chimp.stack.spec import ServiceSpec


class ManagedProcess:
    def __init__(self, spec: ServiceSpec, env: Mapping[str, str], label_width: int) -> None:
        self.spec = spec
        self._env = dict(env)
        self._label = f"[{spec.name}]".ljust(label_width + 3)
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def start(self, out: TextIO | None = None) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = asyncio.create_task(self._prefix_lines(out or sys.stdout))

    async def _prefix_lines(self, out: TextIO) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        stream = self._proc.stdout
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the stream limit: pass on what was read
                line = await stream.read(64 * 1024)
            if not line:
                return
            text = line.decode("utf-8", errors="replace").rstrip("\n")
            out.write(f"{self._label}{text}\n")
            out.flush()

    async def wait(self) -> int:
        assert self._proc is not None
        code = await self._proc.wait()
        if self._pump is not None:
            # The last lines (often the reason it died) are still in the pipe.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump), timeout=2.0)
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        # The group outlives its leader when a grandchild lingers, so signal it either way.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, grace_s: float) -> None:
        """SIGTERM the group, SIGKILL what is left after ``grace_s``, and reap the leader."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._proc.wait(), timeout=grace_s)
        # Kill stragglers of the group even when the leader exited in time.
        self._signal_group(signal.SIGKILL)
        await self._proc.wait()
        if self._pump is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._pump, timeout=2.0)
            self._pump.cancel()
