"""Logging setup, called by entrypoints (never at import)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO", service: str = "chimp") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per outgoing HTTP call (registry polls, proxied frames) is noise at INFO.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
