"""Write the three services' OpenAPI documents (docs/openapi/*.json) from their app factories.

``scripts/openapi`` (or ``python -m chimp.stack.openapi [FOLDER]``). The committed files are
the contract: a test fails when the code's documents differ, so every API change shows up as
a reviewed diff. Output is deterministic: default settings with no ``CHIMP_*`` variable and
no ``.env`` read, sorted keys, two-space indent, a final newline.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from fastapi import FastAPI

DEFAULT_FOLDER = Path("docs/openapi")


@contextmanager
def _no_chimp_environment() -> Iterator[None]:
    """Settings from defaults only, whatever the machine's environment says."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("CHIMP_")}
    with mock.patch.dict(os.environ, kept, clear=True):
        yield


def _training() -> FastAPI:
    from chimp.training.app import create_app
    from chimp.training.config import TrainingSettings
    from chimp.training.plugins.discovery import PluginCatalog

    # The plugin catalog fills route bodies at run time, not the document.
    return create_app(TrainingSettings(_env_file=None), catalog=PluginCatalog())


def _serving() -> FastAPI:
    from chimp.serving.app import create_app
    from chimp.serving.config import ServingSettings

    return create_app(ServingSettings(_env_file=None))


def _frontend() -> FastAPI:
    from chimp.frontend.app import create_app
    from chimp.frontend.config import FrontendSettings

    return create_app(FrontendSettings(_env_file=None))


FACTORIES: dict[str, Callable[[], FastAPI]] = {
    "training": _training,
    "serving": _serving,
    "frontend": _frontend,
}


def documents() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, by service name."""
    with _no_chimp_environment():
        return {name: factory().openapi() for name, factory in FACTORIES.items()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in documents().items():
        path = folder / f"{name}.json"
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in write(Path(args[0]) if args else DEFAULT_FOLDER):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
