"""``chimp-serving`` (or ``chimp-serving serve``): run the serving API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from chimp.serving.app import create_app
from chimp.serving.config import ServingSettings
from chimp.shared.logging import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chimp-serving",
        description="CHIMP serving API: models from the MLflow registry over REST. "
        "Settings come from CHIMP_* environment variables (see docs/serving.md).",
    )
    parser.add_argument("command", nargs="?", choices=["serve"], default="serve")
    parser.add_argument("--host", help="bind address (CHIMP_SERVING__HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CHIMP_SERVING__PORT, default 5254)")
    parser.add_argument("--log-level", help="CHIMP_LOG_LEVEL, default INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = ServingSettings()
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if updates:
        settings.serving = settings.serving.model_copy(update=updates)
    if args.log_level:
        settings.log_level = args.log_level
    setup_logging(settings.log_level, service="serving")
    uvicorn.run(
        create_app(settings),
        host=settings.serving.host,
        port=settings.serving.port,
        log_config=None,  # keep our handler; uvicorn's loggers propagate to it
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0
