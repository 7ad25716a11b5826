"""Plugin discovery: built-ins, the ``chimp.plugins`` entry-point group, a plugin folder."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from chimp.shared.errors import NotFoundError
from chimp.shared.schemas.models import ModelMetadata
from chimp.training.plugins import PluginContext, ProductionModel
from chimp.training.plugins.discovery import discover_plugins
from tests.training.synthetic import write_folder_dataset

EXAMPLE_PACKAGE = Path(__file__).parents[2] / "examples" / "chimp-plugin-hello"

FILE_PLUGIN = textwrap.dedent(
    """
    from chimp.shared.schemas.plugins import PluginInfo
    from chimp.training.plugins.base import BasePlugin
    from chimp.training.plugins.builtin.example import ExamplePlugin  # imported, not defined


    class FolderPlugin(BasePlugin):
        info = PluginInfo(name="from_file", version="1")

        def run(self, context):
            return {"ok": True}


    class Shadow(BasePlugin):
        info = PluginInfo(name="example", version="666")

        def run(self, context):
            return {}
    """
)


class RecordingConnector:
    def __init__(self) -> None:
        self.stored: list[tuple[str, Path, ModelMetadata, dict[str, Any]]] = []

    def get_production_model(
        self, name: str, *, alias: str = "production"
    ) -> ProductionModel | None:
        return None

    def store_model(
        self, name: str, onnx_path: Path, metadata: ModelMetadata | None, **kw: Any
    ) -> None:
        assert metadata is not None, "built-in plugins always store CHIMP metadata"
        self.stored.append((name, onnx_path, metadata, kw))


def test_builtins_are_found() -> None:
    catalog = discover_plugins()
    assert {"example", "emotion_recognition", "image_classification"} <= set(catalog.plugins)
    with pytest.raises(NotFoundError):
        catalog.get("nope")


def test_plugin_folder_files_and_packages(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text(FILE_PLUGIN)
    package = tmp_path / "two"
    package.mkdir()
    (package / "__init__.py").write_text(
        FILE_PLUGIN.replace('"from_file"', '"from_package"').replace("666", "667")
    )
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "notes.txt").write_text("not a plugin")

    catalog = discover_plugins(tmp_path)
    assert {"from_file", "from_package"} <= set(catalog.plugins)
    assert catalog.get("example").info.version == "1.0.0"  # a folder cannot shadow a built-in
    assert catalog.errors == {str(tmp_path / "broken.py"): "RuntimeError: boom"}


def test_missing_plugin_folder_is_reported(tmp_path: Path) -> None:
    catalog = discover_plugins(tmp_path / "absent")
    assert str(tmp_path / "absent") in catalog.errors


def _install_entry_point(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``pip install`` of the example package leaves behind, without running pip."""
    dist = site / "chimp_plugin_hello-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: chimp-plugin-hello\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[chimp.plugins]\nhello = chimp_plugin_hello:HelloPlugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE_PACKAGE / "src"))


def test_the_example_package_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_entry_point(tmp_path / "site", monkeypatch)
    catalog = discover_plugins()
    plugin = catalog.get("hello")
    assert plugin.info.arguments[0].name == "model_name"

    data = write_folder_dataset(tmp_path / "ds", per_label=3, labels=["cat", "dog"], size=40)
    connector = RecordingConnector()
    (tmp_path / "work").mkdir()
    progress: list[float] = []
    context = PluginContext(
        task_id="t",
        arguments=plugin.info.validate_arguments({"model_name": "hello-test"}),
        datasets={"train": data},
        dataset_names={"train": "pets"},
        tmp_dir=tmp_path / "work",
        connector=connector,
        logger=logging.getLogger("test"),
        progress_sink=lambda f, _m: progress.append(f),
    )
    assert plugin().run(context) == {"labels": ["cat", "dog"]}
    assert progress[-1] == 1.0
    ((name, onnx_path, metadata, _),) = connector.stored
    assert name == "hello-test"
    assert onnx_path.is_file()
    assert metadata.labels == ["cat", "dog"]
    assert metadata.dataset == "pets"
