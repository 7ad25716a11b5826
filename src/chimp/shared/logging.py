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
