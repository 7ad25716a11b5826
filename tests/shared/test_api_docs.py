"""``/docs`` and ``/redoc`` of every app use only files the app itself serves.

FastAPI's defaults load Swagger UI and ReDoc from CDNs; offline they are white pages. The same
pages in Chromium with the network blocked are in test_api_docs_browser.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from chimp.frontend.app import create_app as create_frontend
from chimp.frontend.config import FrontendSettings
from chimp.serving.app import create_app as create_serving
from chimp.serving.config import ServingSettings
from chimp.shared.settings import DatastoreConfig, MlflowConfig
from chimp.training.app import create_app as create_training
from chimp.training.config import TrainingSettings

AppFactory = Callable[[], FastAPI]
# One operation each app is sure to document, as Swagger UI and ReDoc show its path.
KNOWN_PATH = {"training": "/plugins", "serving": "/models", "frontend": "/health/live"}


def app_factories(tmp_path: Path, redis_url: str, mlflow_uri: str) -> dict[str, AppFactory]:
    """Each app with settings of its own under ``tmp_path`` (nothing connects until started)."""
    prefix = f"chimp-test-{uuid.uuid4().hex[:12]}"
    mlflow = MlflowConfig(tracking_uri=mlflow_uri, experiment=f"{prefix}-exp")
    return {
        "training": lambda: create_training(
            TrainingSettings(
                _env_file=None,
                data_dir=tmp_path / "training",
                redis_url=redis_url,
                mlflow=mlflow,
                datastore=DatastoreConfig(backend="local", local_path=tmp_path / "store"),
            )
        ),
        "serving": lambda: create_serving(
            ServingSettings(
                _env_file=None,
                data_dir=tmp_path / "serving",
                mlflow=mlflow,
                model_name=f"{prefix}-model",
            )
        ),
        "frontend": lambda: create_frontend(FrontendSettings(_env_file=None)),
    }


@pytest.mark.parametrize("app_name", ["training", "serving", "frontend"])
async def test_docs_pages_point_only_at_files_the_app_serves(tmp_path: Path, app_name: str) -> None:
    app = app_factories(tmp_path, "redis://127.0.0.1:9", "http://127.0.0.1:9")[app_name]()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
            assert urls, html
            assert [u for u in urls if not u.startswith("/")] == [], f"{page}: {urls}"
            for url in urls:
                asset = await client.get(url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 1000, url
