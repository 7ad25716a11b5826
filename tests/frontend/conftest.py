"""The web app wired to in-memory fakes of training and serving (see fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from tests.contracts.checker import ContractChecked
from tests.frontend.fakes import ServingState, TrainingState, fake_serving, fake_training

ADMIN_TOKEN = "admin-secret"


@pytest.fixture
def training_state() -> TrainingState:
    return TrainingState()


@pytest.fixture
def serving_state() -> ServingState:
    return ServingState()


@pytest.fixture
def make_settings() -> Callable[..., FrontendSettings]:
    def make(**frontend: object) -> FrontendSettings:
        return FrontendSettings(
            frontend=FrontendConfig.model_validate(frontend),
            auth={"token": SecretStr(ADMIN_TOKEN)},
        )

    return make


@pytest.fixture
def contract_problems() -> Iterator[list[str]]:
    """Every answer a fake gave that the real service's OpenAPI document would not allow."""
    problems: list[str] = []
    yield problems
    assert problems == [], "a fake drifted from the real API's committed OpenAPI document"


@pytest.fixture
def make_app(
    training_state: TrainingState, serving_state: ServingState, contract_problems: list[str]
) -> Callable[[FrontendSettings], FastAPI]:
    def make(settings: FrontendSettings) -> FastAPI:
        training = ContractChecked(fake_training(training_state), "training", contract_problems)
        serving = ContractChecked(fake_serving(serving_state), "serving", contract_problems)
        return create_app(
            settings,
            training_transport=httpx.ASGITransport(app=training),
            serving_transport=httpx.ASGITransport(app=serving),
        )

    return make


async def open_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as client,
    ):
        yield client


@pytest.fixture
async def client(
    make_app: Callable[[FrontendSettings], FastAPI],
    make_settings: Callable[..., FrontendSettings],
) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(make_app(make_settings())):
        yield c
