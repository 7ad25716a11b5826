"""A training child dies with its worker, and only then: in a container the worker is pid 1."""

from __future__ import annotations

from typing import NoReturn

import pytest

from chimp.training import runner
from chimp.training.protocol import PARENT_PID_ENV


class ExitedError(Exception):
    pass


class _Libc:
    def prctl(self, *_args: int) -> int:  # the request itself is the kernel's business
        return 0


def _exit(code: int) -> NoReturn:
    raise ExitedError(code)


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr("chimp.training.runner.ctypes.CDLL", lambda *_a, **_k: _Libc())
    monkeypatch.setattr("chimp.training.runner.os._exit", _exit)
    monkeypatch.setattr("chimp.training.runner.os.getppid", lambda: 1)
    return monkeypatch


def test_a_child_of_a_worker_that_is_pid_1_trains(child: pytest.MonkeyPatch) -> None:
    # What `chimp-train worker` as a container's command looks like from its child.
    child.setenv(PARENT_PID_ENV, "1")
    runner._die_with_the_worker()  # returns: the worker is alive


def test_a_child_whose_worker_is_already_gone_stops_at_once(child: pytest.MonkeyPatch) -> None:
    child.setenv(PARENT_PID_ENV, "4242")  # and this process was handed over to init
    with pytest.raises(ExitedError):
        runner._die_with_the_worker()
