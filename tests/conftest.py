"""Test harness: fixtures that give tests the real parts (Redis, an S3 server, MLflow)."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.redis",
    "tests.fixtures.s3",
    "tests.fixtures.mlflow",
    "tests.fixtures.pretrained",
]
