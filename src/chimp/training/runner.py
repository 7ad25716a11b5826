"""The training child process: ``python -m chimp.training.runner`` (started by the worker).

It runs one plugin to completion in its own process so the worker's event loop stays free
for progress, cancel and timeouts. SIGTERM means "cancelled": the plugin sees it through
``context.is_cancelled()`` and the worker kills the process if it does not stop in time.

The task's MLflow run opens before the plugin starts and ends FINISHED only after its model is
registered; a failure ends it FAILED, a cancel KILLED, and neither registers anything.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
from typing import IO, Any

from pydantic import BaseModel

from chimp.shared.logging import setup_logging
from chimp.shared.registry import ModelRegistry
from chimp.training.connector import RegistryConnector
from chimp.training.plugins.base import PluginContext, TaskCancelledError
from chimp.training.plugins.discovery import discover_plugins
from chimp.training.protocol import (
    PARENT_PID_ENV,
    CancelledEvent,
    ChildSpec,
    ErrorEvent,
    ProgressEvent,
    ResultEvent,
    RunEvent,
)

logger = logging.getLogger("chimp.training.task")


class Channel:
    """JSON lines to the worker; thread-safe because plugins may report from threads."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: BaseModel) -> None:
        line = event.model_dump_json() + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def run_task(spec: ChildSpec, channel: Channel, cancelled: threading.Event) -> int:
    """Run the plugin ``spec`` names; returns the process exit code."""
    catalog = discover_plugins(spec.plugin_dir)
    plugin_cls = catalog.get(spec.plugin)
    arguments = plugin_cls.info.validate_arguments(spec.arguments)
    connector = RegistryConnector(
        registry_factory=lambda: ModelRegistry(spec.tracking_uri, experiment=spec.experiment),
        download_dir=spec.tmp_dir / "models",
        user_id=spec.user_id,
        run_name=f"{spec.plugin}-{spec.task_id[:8]}",
        run_tags={"chimp.task_id": spec.task_id, "chimp.plugin": spec.plugin}
        | ({"chimp.user_id": spec.user_id} if spec.user_id else {}),
        # Named like the task request's fields, so they never clash with a plugin's own params.
        run_params={f"arguments.{k}": v for k, v in arguments.items()}
        | {f"datasets.{k}": v for k, v in spec.dataset_names.items()},
        on_run_started=lambda run_id: channel.send(RunEvent(run_id=run_id)),
    )
    context = PluginContext(
        task_id=spec.task_id,
        arguments=arguments,
        datasets=dict(spec.datasets),
        dataset_names=dict(spec.dataset_names),
        tmp_dir=spec.tmp_dir / "work",
        connector=connector,
        logger=logger,
        default_model_name=spec.default_model_name,
        user_id=spec.user_id,
        promote=spec.promote,
        progress_sink=lambda f, m: channel.send(ProgressEvent(progress=f, message=m)),
        cancel_probe=cancelled.is_set,
        params_sink=connector.log_params,
        metrics_sink=lambda metrics, step: connector.log_metrics(metrics, step=step),
    )
    context.tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        if plugin_cls.info.model_return_type is not None:
            # Open the run now: its params and curves show in MLflow while the model trains,
            # and a down MLflow fails the task before hours of training rather than after.
            connector.start_run()
        outcome = plugin_cls().run(context)
        result: dict[str, Any] = dict(outcome or {})
        # The last moment a cancel can still prevent registration.
        context.check_cancelled()
        versions = connector.commit()
    except TaskCancelledError:
        connector.abort("KILLED")
        raise
    except BaseException:
        connector.abort("FAILED")
        raise
    connector.end_run("FINISHED")
    if versions:
        result["models"] = [v.model_dump(mode="json", exclude={"metadata"}) for v in versions]
    # Round-trip through JSON now, so a non-serialisable result fails here with a clear message.
    channel.send(ResultEvent(result=json.loads(json.dumps(result, default=str))))
    return 0


def _die_with_the_worker() -> None:
    """Ask Linux to SIGKILL this process when the worker that started it dies.

    A worker killed outright (SIGKILL, OOM) cannot stop its child; an orphaned training
    would go on and might register a model for a task already recorded as failed.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    # The worker died before the request took effect: this process was handed to another
    # parent. Compared with the worker's own pid, not with 1: in a container the worker
    # itself is often pid 1.
    worker = os.environ.get(PARENT_PID_ENV)
    if worker is not None and os.getppid() != int(worker):
        os._exit(1)


def main() -> int:
    _die_with_the_worker()
    # Keep the real stdout as the private event pipe; send fd 1 to stderr so prints and
    # native libraries writing to stdout cannot corrupt the protocol.
    channel = Channel(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    cancelled = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: cancelled.set())
    spec = ChildSpec.model_validate_json(sys.stdin.read())
    setup_logging(spec.log_level, service=f"chimp-task-{spec.task_id[:8]}")
    try:
        return run_task(spec, channel, cancelled)
    except TaskCancelledError:
        channel.send(CancelledEvent())
        return 0
    except Exception as exc:
        logger.exception("plugin %s failed", spec.plugin)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        channel.send(ErrorEvent(error=f"{type(exc).__name__}: {message}"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
