"""Every route of the three apps is either on an explicit public list or refuses a caller
without credentials: the admin token on training and serving, a signed-in session on the web
app. A new route is protected unless someone adds it to a list here, in a reviewed diff."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from chimp.frontend.app import create_app as create_frontend
from chimp.frontend.config import FrontendConfig, FrontendSettings
from chimp.serving.app import create_app as create_serving
from chimp.serving.config import ServingSettings
from chimp.training.app import create_app as create_training
from chimp.training.config import TrainingSettings
from chimp.training.plugins.discovery import PluginCatalog

TOKEN = SecretStr("route-walk-token")

# What anyone who can reach the service may call. Training reads hold people's data (face
# datasets, tasks naming users, per-user models), so only liveness and the plugin catalogue
# are open; serving answers applications, so everything but control is open.
PUBLIC: dict[str, set[tuple[str, str]]] = {
    "training": {
        ("get", "/ping"),
        ("get", "/health/live"),
        ("get", "/health/ready"),
        ("get", "/plugins"),
        ("get", "/plugins/{name}"),
    },
    "serving": {
        ("get", "/ping"),
        ("get", "/health/live"),
        ("get", "/health/ready"),
        ("get", "/metrics"),
        ("get", "/models"),
        ("post", "/models/{name}/predict-image"),
        ("get", "/model"),
        ("post", "/model/{name}/infer"),
        ("get", "/v2"),
        ("get", "/v2/health/live"),
        ("get", "/v2/health/ready"),
        ("get", "/v2/models/{name}"),
        ("get", "/v2/models/{name}/ready"),
        ("post", "/v2/models/{name}/infer"),
        ("get", "/v2/models/{name}/versions/{version}"),
        ("get", "/v2/models/{name}/versions/{version}/ready"),
        ("post", "/v2/models/{name}/versions/{version}/infer"),
    },
    "frontend": {
        ("get", "/ping"),
        ("get", "/health/live"),
        ("get", "/health/ready"),
        ("get", "/login"),
        ("post", "/login"),
    },
}


def _apps() -> dict[str, FastAPI]:
    return {
        "training": create_training(
            TrainingSettings(_env_file=None, auth={"token": TOKEN}), catalog=PluginCatalog()
        ),
        "serving": create_serving(ServingSettings(_env_file=None, auth={"token": TOKEN})),
        "frontend": create_frontend(
            FrontendSettings(
                _env_file=None,
                auth={"token": TOKEN},
                frontend=FrontendConfig(users={"ann": SecretStr("pw")}),
            )
        ),
    }


# Routes kept out of the OpenAPI document on purpose (HTML pages); walked all the same.
UNDOCUMENTED: dict[str, set[tuple[str, str]]] = {
    "training": set(),
    "serving": set(),
    "frontend": {
        ("get", "/"),
        ("get", "/calibrate"),
        ("get", "/training"),
        ("get", "/models"),
        ("get", "/login"),
        ("post", "/login"),
        ("post", "/logout"),
    },
}


def _operations(app: FastAPI, service: str) -> list[tuple[str, str]]:
    spec: dict[str, Any] = app.openapi()
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    return sorted(documented | UNDOCUMENTED[service])


def _concrete(path: str) -> str:
    return re.sub(r"\{version\}", "1", re.sub(r"\{(?!version)[^}]+\}", "x", path))


def _refused(status: int, service: str) -> bool:
    # The web app sends a signed-out browser to the sign-in page; its API answers 401.
    return status == 401 or (service == "frontend" and status == 303)


@pytest.mark.parametrize("service", ["training", "serving", "frontend"])
async def test_every_route_is_public_by_list_or_refuses_anonymous_callers(service: str) -> None:
    app = _apps()[service]
    operations = _operations(app, service)
    assert PUBLIC[service] <= set(operations), "a listed public route no longer exists"
    # No lifespan: a guard answers before any state is touched; open routes may then fail
    # for want of it, which is fine here (anything but a refusal counts as open).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    wrong: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for method, path in operations:
            response = await client.request(method.upper(), _concrete(path))
            public = (method, path) in PUBLIC[service]
            if public == _refused(response.status_code, service):
                wrong.append(f"{method.upper()} {path}: {response.status_code}")
    assert wrong == [], "routes whose protection differs from the list"


@pytest.mark.parametrize("service", ["training", "serving"])
async def test_the_token_opens_what_it_guards(service: str) -> None:
    app = _apps()[service]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {TOKEN.get_secret_value()}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for method, path in _operations(app, service):
            response = await client.request(method.upper(), _concrete(path), headers=headers)
            assert response.status_code != 401, f"{method.upper()} {path}"
