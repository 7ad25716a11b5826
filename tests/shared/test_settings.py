from pathlib import Path

import pytest
from pydantic import ValidationError

from chimp.shared.settings import ChimpSettings


def test_environment_overrides_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIMP_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("CHIMP_DATASTORE__BACKEND", "s3")
    monkeypatch.setenv("CHIMP_DATASTORE__S3__BUCKET", "datasets")
    monkeypatch.setenv("CHIMP_DATASTORE__S3__SECRET_ACCESS_KEY", "hunter2")
    settings = ChimpSettings(_env_file=None)
    assert settings.redis_url == "redis://example:6380/2"
    assert settings.datastore.backend == "s3"
    assert settings.datastore.s3.bucket == "datasets"
    secret = settings.datastore.s3.secret_access_key
    assert secret is not None
    assert secret.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


def test_local_datastore_defaults_under_the_data_dir(tmp_path: Path) -> None:
    settings = ChimpSettings(_env_file=None, data_dir=tmp_path)
    assert settings.datastore_path() == tmp_path / "datastore"


def test_unknown_nested_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIMP_DATASTORE__BAKEND", "s3")
    with pytest.raises(ValidationError, match="bakend"):
        ChimpSettings(_env_file=None)
