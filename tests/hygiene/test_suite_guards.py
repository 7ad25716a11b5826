"""The suite guards itself: hangs fail, and CI never quietly skips the browser tests."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import SLOW_TEST_TIMEOUT_S
from tests.frontend import browser


def test_every_test_has_a_time_limit(request: pytest.FixtureRequest) -> None:
    assert float(request.config.getini("timeout")) > 0


@pytest.mark.slow
def test_slow_tests_get_the_longer_limit(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None
    assert marker.args == (SLOW_TEST_TIMEOUT_S,)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_browser_tests_run_in_ci_even_without_chromium(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    # Without Chromium they then fail at launch, instead of being skipped and passing CI.
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert browser.chromium_available()


def test_browser_tests_skip_on_a_laptop_without_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert not browser.chromium_available()
