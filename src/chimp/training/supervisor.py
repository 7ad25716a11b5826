"""Run one training child process and watch it: events, cancel, timeout, cleanup.

The child runs in its own process group, so a cancel or timeout also stops anything the
plugin started. Cancelling is two-step: SIGTERM (the plugin sees ``is_cancelled()``), then
SIGKILL once the grace period is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chimp.shared.schemas.tasks import TaskStatus
from chimp.training.protocol import (
    PARENT_PID_ENV,
    CancelledEvent,
    ChildSpec,
    ErrorEvent,
    ProgressEvent,
    ResultEvent,
    RunEvent,
    child_event_adapter,
)

logger = logging.getLogger(__name__)
child_logger = logging.getLogger("chimp.training.task")

STREAM_LIMIT = 16 * 1024 * 1024
STDERR_TAIL_LINES = 20
READER_DRAIN_S = 5.0


@dataclass(frozen=True)
class ChildOutcome:
    status: TaskStatus
    result: dict[str, Any] | None = None
    error: str | None = None
    run_id: str | None = None  # the task's MLflow run, when it opened one


@dataclass(frozen=True)
class ChildLimits:
    timeout_s: float
    grace_s: float
    poll_s: float


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


async def run_child(
    spec: ChildSpec,
    limits: ChildLimits,
    *,
    on_progress: Callable[[float, str], Awaitable[object]],
    is_cancelled: Callable[[], Awaitable[bool]],
) -> ChildOutcome:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chimp.training.runner",
        env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        limit=STREAM_LIMIT,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    final: ResultEvent | ErrorEvent | CancelledEvent | None = None
    run_id: str | None = None
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    stdout, stderr = proc.stdout, proc.stderr

    async def read_events() -> None:
        nonlocal final, run_id
        async for line in stdout:
            try:
                event = child_event_adapter.validate_json(line)
            except ValidationError:
                logger.warning("ignoring malformed message from task %s", spec.task_id)
                continue
            if isinstance(event, ProgressEvent):
                await on_progress(event.progress, event.message)
            elif isinstance(event, RunEvent):
                run_id = event.run_id
            else:
                final = event

    async def read_stderr() -> None:
        async for raw in stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            stderr_tail.append(line)
            child_logger.info("[%s] %s", spec.task_id[:8], line)

    readers = asyncio.gather(read_events(), read_stderr())
    reason: str | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout_s
    kill_at: float | None = None
    exited = asyncio.ensure_future(proc.wait())
    try:
        proc.stdin.write(spec.model_dump_json().encode())
        await proc.stdin.drain()
        proc.stdin.close()
        while not exited.done():
            await asyncio.wait({exited}, timeout=limits.poll_s)
            if exited.done():
                break
            if kill_at is not None:
                if loop.time() >= kill_at:
                    logger.warning("task %s did not stop in time; killing it", spec.task_id)
                    _signal_group(proc, signal.SIGKILL)
                    kill_at = None
                continue
            if reason is None and await is_cancelled():
                reason = "cancelled"
            elif reason is None and loop.time() >= deadline:
                reason = "timeout"
            if reason is not None:
                _signal_group(proc, signal.SIGTERM)
                kill_at = loop.time() + limits.grace_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(readers), READER_DRAIN_S)
    finally:
        if proc.returncode is None:
            _signal_group(proc, signal.SIGKILL)
            await proc.wait()
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await readers
        exited.cancel()

    if reason == "cancelled":
        return ChildOutcome(TaskStatus.CANCELLED, run_id=run_id)
    if reason == "timeout":
        return ChildOutcome(
            TaskStatus.FAILED,
            error=f"timed out after {limits.timeout_s:g} s and was stopped",
            run_id=run_id,
        )
    if isinstance(final, ResultEvent) and proc.returncode == 0:
        return ChildOutcome(TaskStatus.SUCCEEDED, result=final.result, run_id=run_id)
    if isinstance(final, ErrorEvent):
        return ChildOutcome(TaskStatus.FAILED, error=final.error, run_id=run_id)
    if isinstance(final, CancelledEvent):
        return ChildOutcome(TaskStatus.CANCELLED, run_id=run_id)
    tail = "\n".join(stderr_tail)
    return ChildOutcome(
        TaskStatus.FAILED,
        error=f"training process exited with code {proc.returncode}"
        + (f":\n{tail}" if tail else ""),
        run_id=run_id,
    )
