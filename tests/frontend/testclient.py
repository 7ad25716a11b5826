"""Starlette's TestClient, the in-process WebSocket client used here.

Its module warns at import that it prefers the ``httpx2`` package; that is about the client, not
about our code, so the warning is silenced at this one import.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["TestClient"]
