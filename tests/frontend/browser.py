"""Harness of the browser tests: Debian Chromium under Playwright, apps served by uvicorn."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from tests.fixtures.ports import free_port, wait_for_port

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path("test-artifacts/screenshots")


def chromium_args(camera: Path) -> list[str]:
    return [
        "--no-sandbox",
        "--headless=new",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]


def chromium_available() -> bool:
    """Whether browser tests can run. In CI (``CI`` set) they must: a missing Chromium fails."""
    if os.environ.get("CI"):
        return True
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Run ``app`` on a free port in a thread with its own event loop; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


# Marks of every browser test module: `pytestmark = BROWSER_TEST_MARKS`.
BROWSER_TEST_MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason="needs Debian chromium (apt install)"),
]
