"""Runs a list of services as one stack: start in stages, wait for ready, watch, stop.

Nothing restarts silently: when a service exits on its own, the supervisor says so and stops the
whole stack with a non-zero exit, so a broken stack never looks healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, TextIO

from chimp.stack.ports import find_conflicts
from chimp.stack.process import ManagedProcess
from chimp.stack.readiness import wait_until_ready
from chimp.stack.spec import ServiceSpec

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PORT_IN_USE = 2


@dataclass(frozen=True)
class StackOptions:
    host: str
    ready_timeout_s: float
    stop_grace_s: float


@dataclass(frozen=True)
class Exited:
    """A service that exited while it was meant to run."""

    name: str
    code: int


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        base_env: Mapping[str, str],
        options: StackOptions,
        out: TextIO | None = None,
    ) -> None:
        self._specs = list(specs)
        self._base_env = dict(base_env)
        self._options = options
        self._out = out or sys.stdout
        self._started: list[ManagedProcess] = []
        self._stop_requested = asyncio.Event()
        self._stopping = False

    def say(self, text: str) -> None:
        self._out.write(f"[chimp] {text}\n")
        self._out.flush()

    def request_stop(self) -> None:
        self._stop_requested.set()

    @property
    def pids(self) -> dict[str, int]:
        return {p.spec.name: p.pid for p in self._started if p.pid is not None}

    def ports_are_free(self) -> bool:
        """Check every port before anything starts; say which service and setting clash."""
        conflicts = find_conflicts(self._specs, self._options.host)
        for conflict in conflicts:
            self.say(f"ERROR: {conflict.message()}")
        if conflicts:
            self.say("nothing was started.")
        return not conflicts

    async def run(self, on_ready: str | None = None) -> int:
        """Start everything, block until Ctrl-C/SIGTERM or a death, stop everything."""
        if not self.ports_are_free():
            return EXIT_PORT_IN_USE
        self._install_signal_handlers()
        try:
            return await self._run_started(on_ready)
        finally:
            await self._stop_all()
            self._remove_signal_handlers()

    async def _run_started(self, on_ready: str | None) -> int:
        watchers: list[asyncio.Task[Exited | None]] = []
        stop_wait = asyncio.create_task(self._stop_requested.wait())
        try:
            stages = groupby(sorted(self._specs, key=lambda s: s.stage), lambda s: s.stage)
            for _stage, group in stages:
                procs = [await self._start(spec) for spec in group]
                watchers += [
                    asyncio.create_task(self._watch(p)) for p in procs if not p.spec.oneshot
                ]
                ready = asyncio.create_task(self._wait_ready(procs))
                done, _ = await asyncio.wait(
                    [ready, stop_wait, *watchers], return_when=asyncio.FIRST_COMPLETED
                )
                if ready not in done:
                    ready.cancel()
                    return self._outcome(done)
                if isinstance(ready.exception(), TimeoutError):
                    self.say(f"ERROR: {ready.exception()}")
                    return EXIT_FAILED
                ready.result()
            self._print_ready(on_ready)
            done, _ = await asyncio.wait(
                [stop_wait, *watchers], return_when=asyncio.FIRST_COMPLETED
            )
            return self._outcome(done)
        finally:
            for task in [stop_wait, *watchers]:
                task.cancel()

    def _outcome(self, done: set[asyncio.Task[Any]]) -> int:
        for task in done:
            exited = task.result() if not task.cancelled() else None
            if isinstance(exited, Exited):
                self.say("!" * 72)
                self.say(f"!! {exited.name} stopped unexpectedly (exit code {exited.code}).")
                self.say("!! Nothing is restarted: stopping the whole stack. See its log above.")
                self.say("!" * 72)
                return EXIT_FAILED
        self.say("stopping (Ctrl-C/SIGTERM received) ...")
        return EXIT_OK

    async def _start(self, spec: ServiceSpec) -> ManagedProcess:
        width = max(len(s.name) for s in self._specs)
        proc = ManagedProcess(spec, {**self._base_env, **spec.env}, width)
        self.say(f"starting {spec.name}: {' '.join(spec.argv)}")
        await proc.start(self._out)
        self._started.append(proc)
        return proc

    async def _watch(self, proc: ManagedProcess) -> Exited | None:
        code = await proc.wait()
        return None if self._stopping else Exited(proc.spec.name, code)

    async def _wait_ready(self, procs: Sequence[ManagedProcess]) -> None:
        pending = {p.spec.name: p for p in procs if p.spec.readiness is not None or p.spec.oneshot}

        async def one(proc: ManagedProcess) -> None:
            if proc.spec.oneshot:
                code = await proc.wait()
                self.say(
                    f"{proc.spec.name} finished"
                    if code == 0
                    else f"{proc.spec.name} failed (exit code {code}); the stack goes on without it"
                )
            else:
                assert proc.spec.readiness is not None
                await wait_until_ready(proc.spec.readiness)
                self.say(f"{proc.spec.name} is ready")
            pending.pop(proc.spec.name, None)

        try:
            async with asyncio.timeout(self._options.ready_timeout_s):
                await asyncio.gather(*(one(p) for p in list(pending.values())))
        except TimeoutError:
            names = ", ".join(sorted(pending))
            raise TimeoutError(
                f"not ready after {self._options.ready_timeout_s:.0f}s: {names} "
                "(raise CHIMP_STACK__READY_TIMEOUT_S if the machine is just slow)"
            ) from None

    def _print_ready(self, on_ready: str | None) -> None:
        lines = [f"  {s.name:<10} {s.url}" for s in self._specs if s.url]
        self.say("all services are ready:\n" + "\n".join(lines))
        if on_ready:
            self.say(on_ready)
        self.say("press Ctrl-C to stop everything.")

    async def _stop_all(self) -> None:
        self._stopping = True
        # Later stages first: the APIs go before the Redis and MLflow they depend on; within a
        # stage in parallel, so a slow service does not hold up the others' grace periods.
        by_stage = sorted(self._started, key=lambda p: p.spec.stage, reverse=True)
        for _stage, group in groupby(by_stage, lambda p: p.spec.stage):
            procs = list(group)
            running = [p.spec.name for p in procs if p.returncode is None]
            if running:
                self.say(f"stopping {', '.join(running)} ...")
            await asyncio.gather(*(p.stop(self._options.stop_grace_s) for p in procs))
        if self._started:
            self.say("everything is stopped.")

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
