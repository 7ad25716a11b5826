"""The supervisor with stand-in services: readiness, log prefixes, deaths, clean stops."""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chimp.stack.ports import port_is_free
from chimp.stack.spec import HttpReady, PortSetting, ServiceSpec
from chimp.stack.supervisor import EXIT_FAILED, EXIT_OK, EXIT_PORT_IN_USE, StackOptions, Supervisor
from tests.fixtures.ports import free_port
from tests.stack.procs import alive

FAKE = str(Path(__file__).with_name("fake_service.py"))
OPTIONS = StackOptions(host="127.0.0.1", ready_timeout_s=30, stop_grace_s=5)


def fake(name: str, port: int, *extra: str, stage: int = 0) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        argv=(sys.executable, FAKE, str(port), *extra),
        readiness=HttpReady(f"http://127.0.0.1:{port}/health/ready"),
        port=PortSetting(port, f"--{name}-port", f"CHIMP_{name.upper()}__PORT"),
        stage=stage,
        url=f"http://127.0.0.1:{port}",
    )


async def until(out: io.StringIO, text: str, task: asyncio.Task[int]) -> None:
    """Wait for ``text`` in the output; fail with the log if the run ended first."""
    while text not in out.getvalue():
        if task.done():
            pytest.fail(f"run ended (code {task.result()}) before {text!r}:\n{out.getvalue()}")
        await asyncio.sleep(0.05)


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_starts_in_stages_prefixes_logs_and_stops_everything(tmp_path: Path) -> None:
    out = io.StringIO()
    pidfile = tmp_path / "grandchild.pid"
    a, b = free_port(), free_port()
    specs = [fake("alpha", a), fake("beta", b, "--grandchild", str(pidfile), stage=1)]
    supervisor = Supervisor(specs, dict(os.environ), OPTIONS, out)
    task = asyncio.create_task(supervisor.run(on_ready="open it"))

    await until(out, "all services are ready", task)
    pids = supervisor.pids
    grandchild = int(pidfile.read_text())
    supervisor.request_stop()
    code = await task

    log = out.getvalue()
    assert code == EXIT_OK
    assert re.search(rf"^\[alpha\] +hello from port {a}$", log, re.MULTILINE)
    assert re.search(rf"^\[beta\] +hello from port {b}$", log, re.MULTILINE)
    # Stage order: beta starts only once alpha answers.
    assert log.index("alpha is ready") < log.index("starting beta")
    assert f"http://127.0.0.1:{b}" in log
    assert "open it" in log
    assert not any(alive(pid) for pid in [*pids.values(), grandchild])
    assert port_is_free("127.0.0.1", a)
    assert port_is_free("127.0.0.1", b)


def oneshot(name: str, code: str, stage: int) -> ServiceSpec:
    return ServiceSpec(
        name=name, argv=(sys.executable, "-c", code), readiness=None, stage=stage, oneshot=True
    )


@pytest.mark.parametrize("exit_code", [0, 3])
async def test_a_oneshot_job_finishes_before_ready_and_never_stops_the_stack(
    exit_code: int,
) -> None:
    out = io.StringIO()
    a = free_port()
    job = f"import sys, time; time.sleep(0.5); print('job done'); sys.exit({exit_code})"
    specs = [fake("alpha", a), oneshot("job", job, stage=1)]
    supervisor = Supervisor(specs, dict(os.environ), OPTIONS, out)
    task = asyncio.create_task(supervisor.run())

    await until(out, "all services are ready", task)
    await asyncio.sleep(0.5)  # the stack keeps running after the job exited
    assert not task.done()
    supervisor.request_stop()
    code = await task

    log = out.getvalue()
    assert code == EXIT_OK
    assert log.index("job done") < log.index("all services are ready")
    if exit_code == 0:
        assert "job finished" in log
    else:
        assert f"job failed (exit code {exit_code}); the stack goes on without it" in log
    assert "stopped unexpectedly" not in log


async def test_a_service_that_dies_stops_the_stack_loudly(tmp_path: Path) -> None:
    out = io.StringIO()
    steady, doomed = free_port(), free_port()
    specs = [fake("steady", steady), fake("doomed", doomed, "--die-after", "1")]
    supervisor = Supervisor(specs, dict(os.environ), OPTIONS, out)

    code = await supervisor.run()

    log = out.getvalue()
    assert code == EXIT_FAILED
    assert "doomed stopped unexpectedly (exit code 3)" in log
    assert re.search(r"^\[doomed\] +giving up$", log, re.MULTILINE)
    assert not any(alive(pid) for pid in supervisor.pids.values())
    assert port_is_free("127.0.0.1", steady)


async def test_a_port_in_use_names_the_service_and_setting_and_starts_nothing(
    listener: int,
) -> None:
    out = io.StringIO()
    specs = [fake("alpha", free_port()), fake("serving", listener)]
    supervisor = Supervisor(specs, dict(os.environ), OPTIONS, out)

    code = await supervisor.run()

    log = out.getvalue()
    assert code == EXIT_PORT_IN_USE
    assert f"port {listener}" in log
    assert "serving cannot start" in log
    assert "--serving-port" in log
    assert "CHIMP_SERVING__PORT" in log
    assert "nothing was started" in log
    assert supervisor.pids == {}


async def test_two_services_on_one_port_is_a_conflict() -> None:
    out = io.StringIO()
    port = free_port()
    supervisor = Supervisor([fake("alpha", port), fake("beta", port)], {}, OPTIONS, out)

    assert await supervisor.run() == EXIT_PORT_IN_USE
    assert "already used by alpha" in out.getvalue()


async def test_a_service_never_ready_fails_after_the_timeout() -> None:
    out = io.StringIO()
    options = StackOptions(host="127.0.0.1", ready_timeout_s=2, stop_grace_s=5)
    supervisor = Supervisor(
        [fake("sleepy", free_port(), "--never-ready")], dict(os.environ), options, out
    )

    code = await supervisor.run()

    assert code == EXIT_FAILED
    assert "not ready after 2s: sleepy" in out.getvalue()
    assert not any(alive(pid) for pid in supervisor.pids.values())
