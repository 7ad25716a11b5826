"""Test harness: fixtures that give tests the real parts (Redis, an S3 server, MLflow)."""

import pytest

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.redis",
    "tests.fixtures.s3",
    "tests.fixtures.mlflow",
    "tests.fixtures.pretrained",
]

# Tests that train models, start the whole stack or drive Chromium get this long before
# pytest-timeout fails them (the default in pyproject.toml is for everything else).
SLOW_TEST_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT_S))
