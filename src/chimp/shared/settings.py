"""Settings shared by every service.

All settings come from the environment (prefix ``CHIMP_``, ``__`` for nesting) or a ``.env``
file. Nothing is instantiated at import: entrypoints build a settings object and hand it to the
app factory. Each service subclasses :class:`ChimpSettings` and adds one section of its own, so
``CHIMP_TRAINING__PORT`` and ``CHIMP_SERVING__PORT`` can live in the same ``.env``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_NAME = "emotion-recognition"


class Section(BaseModel):
    """A nested settings block; unknown keys are a configuration mistake."""

    model_config = ConfigDict(extra="forbid")


class S3Config(Section):
    endpoint_url: str | None = Field(
        default=None, description="S3 API endpoint, e.g. http://minio:9000. None means AWS."
    )
    bucket: str = "chimp"
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    prefix: str = Field(default="", description="Key prefix inside the bucket for all datasets.")


class DatastoreConfig(Section):
    backend: Literal["local", "s3"] = "local"
    local_path: Path | None = Field(
        default=None, description="Folder for the local backend; defaults to <data_dir>/datastore."
    )
    s3: S3Config = S3Config()
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_unpacked_bytes: int = Field(default=2 * 1024 * 1024 * 1024, gt=0)
    max_files: int = Field(default=200_000, gt=0)
    max_compression_ratio: float = Field(
        default=100.0,
        gt=1,
        description="A zip entry inflating more than this many times its packed size is refused "
        "as a zip bomb (entries from compression_ratio_min_bytes up).",
    )
    compression_ratio_min_bytes: int = Field(
        default=1024 * 1024, ge=0, description="Entries smaller than this skip the ratio check."
    )
    min_free_disk_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Uploads that would leave less than this share of the disk free are refused.",
    )


class MlflowConfig(Section):
    tracking_uri: str = "http://127.0.0.1:8999"
    experiment: str = "chimp"


class AuthConfig(Section):
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token for mutating/admin endpoints. Unset means auth is off.",
    )


class CorsConfig(Section):
    allow_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins (e.g. https://app.example.com) allowed to call this "
        "service from their pages. Empty: no cross-origin calls.",
    )
    allow_credentials: bool = Field(
        default=False, description="Let those origins send cookies and Authorization headers."
    )


class ChimpSettings(BaseSettings):
    """The base every service's settings extend."""

    model_config = SettingsConfigDict(
        env_prefix="CHIMP_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(default=Path(".chimp"), description="Folder for all local state.")
    log_level: str = "INFO"
    redis_url: str = "redis://127.0.0.1:6379/0"
    model_name: str = Field(
        default=DEFAULT_MODEL_NAME, description="Registered model the application uses."
    )
    mlflow: MlflowConfig = MlflowConfig()
    datastore: DatastoreConfig = DatastoreConfig()
    auth: AuthConfig = AuthConfig()
    cors: CorsConfig = CorsConfig()

    def datastore_path(self) -> Path:
        """Folder of the local datastore backend."""
        return self.datastore.local_path or self.data_dir / "datastore"
