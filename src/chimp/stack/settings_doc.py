"""Render the configuration reference (docs/configuration.md) from the settings classes.

``python -m chimp.stack.settings_doc > docs/configuration.md``. Reading the classes instead of
copying them keeps every setting, default and description in one place: the code.
"""

from __future__ import annotations

import importlib
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from chimp.shared.settings import ChimpSettings

# (title, settings class path, section field; None = the shared base fields)
SECTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("Shared by every service", "chimp.shared.settings:ChimpSettings", None),
    ("Training API and worker", "chimp.training.config:TrainingSettings", "training"),
    ("Serving API", "chimp.serving.config:ServingSettings", "serving"),
    ("Web app (front-end)", "chimp.frontend.config:FrontendSettings", "frontend"),
    ("`chimp up` (local stack)", "chimp.stack.config:StackSettings", "stack"),
)


# Said here for settings whose field carries no description of its own.
NOTES: dict[str, str] = {
    "CHIMP_LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR.",
    "CHIMP_REDIS_URL": "Redis for the task queue, task state and serving's prediction windows "
    "(`redis://[:password@]host:port/db`).",
    "CHIMP_MLFLOW__TRACKING_URI": "MLflow tracking server and model registry.",
    "CHIMP_MLFLOW__EXPERIMENT": "MLflow experiment that training runs are logged to.",
    "CHIMP_DATASTORE__BACKEND": "`local` (a folder) or `s3` (MinIO, AWS S3 or any S3 API).",
    "CHIMP_DATASTORE__S3__BUCKET": "Bucket of the datasets.",
    "CHIMP_DATASTORE__S3__REGION": "S3 region (MinIO ignores it).",
    "CHIMP_DATASTORE__S3__ACCESS_KEY_ID": "S3 access key; unset uses the AWS default chain.",
    "CHIMP_DATASTORE__S3__SECRET_ACCESS_KEY": "S3 secret key.",
    "CHIMP_DATASTORE__MAX_UPLOAD_BYTES": "Largest dataset zip accepted.",
    "CHIMP_DATASTORE__MAX_UNPACKED_BYTES": "Largest total size a dataset zip may unpack to.",
    "CHIMP_DATASTORE__MAX_FILES": "Most files a dataset zip may hold.",
}


def _note(env: str, description: str | None) -> str:
    if description:
        return description
    if env in NOTES:
        return NOTES[env]
    if env.endswith("__HOST"):
        return "Interface the service binds to (`0.0.0.0` for all)."
    if env.endswith("__PORT"):
        return "Port the service listens on."
    return ""


@dataclass(frozen=True)
class Row:
    env: str
    type: str
    default: str
    description: str


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value, default=str)}`"


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def rows(model: type[BaseModel], prefix: str) -> Iterator[Row]:
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        nested = _section_model(field.annotation)
        if nested is not None:
            yield from rows(nested, f"{env}__")
            continue
        description = _note(env, field.description).replace("|", "\\|").replace("\n", " ")
        yield Row(env, _type_name(field.annotation), _default(field), description)


def _load(path: str) -> type[BaseModel]:
    module, _, name = path.partition(":")
    cls: type[BaseModel] = getattr(importlib.import_module(module), name)
    return cls


def section_rows(path: str, section: str | None) -> list[Row]:
    settings = _load(path)
    if section is None:
        return list(rows(ChimpSettings, "CHIMP_"))
    field = settings.model_fields[section]
    model = _section_model(field.annotation)
    assert model is not None, f"{path}.{section} is not a settings section"
    return list(rows(model, f"CHIMP_{section.upper()}__"))


INTRO = """\
# Configuration reference

Every setting is an environment variable (prefix `CHIMP_`, `__` between nested names) or a line
in a `.env` file in the working directory; real environment variables win over `.env`.
Lists and maps are JSON (`CHIMP_SERVING__MODELS='["emotion-recognition"]'`). Secrets are
pydantic `SecretStr`: never logged or shown.

`chimp up` sets `CHIMP_DATA_DIR`, `CHIMP_REDIS_URL`, `CHIMP_MLFLOW__TRACKING_URI`,
`CHIMP_AUTH__TOKEN`, each service's `HOST`/`PORT` and the front-end's `TRAINING_URL` /
`SERVING_URL` for the services it starts, from its own flags and settings below. Compose sets
them from `.env` (see [deployment](deployment.md) and `.env.example`).

This page is generated from the settings classes:
`python -m chimp.stack.settings_doc > docs/configuration.md`.
"""


def render() -> str:
    parts = [INTRO]
    for title, path, section in SECTIONS:
        parts.append(
            f"\n## {title}\n\n| Variable | Type | Default | Description |\n|---|---|---|---|"
        )
        parts.extend(
            f"| `{r.env}` | {r.type.replace('|', chr(92) + '|')} | {r.default} | {r.description} |"
            for r in section_rows(path, section)
        )
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
