"""Plugins written to the original CHIMP contract run with one changed import line: discovered,
listed with a JSON Schema, validated before queueing, trained, registered and served."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import redis.asyncio as aioredis

from chimp.serving.config import ServingConfig, ServingSettings
from chimp.shared.schemas.models import ModelMetadata
from chimp.shared.schemas.tasks import TaskStatus
from chimp.shared.settings import MlflowConfig
from chimp.training.plugins import PluginContext, ProductionModel
from chimp.training.plugins.discovery import discover_plugins
from chimp.training.plugins.legacy import LegacyPluginError, PluginInfo, argument_type, native_info
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.serving.conftest import serve
from tests.training.conftest import SettingsFactory, api_client, running_worker, wait_for_task
from tests.training.synthetic import write_folder_dataset, zip_folder

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chimp-plugin-original"


def test_type_hint_strings_become_typed_arguments() -> None:
    assert argument_type("int") == ("int", False)
    assert argument_type("Optional[float]") == ("float", True)
    assert argument_type("typing.Optional[str]") == ("str", True)
    assert argument_type("bool | None") == ("bool", True)
    assert argument_type(int) == ("int", False)
    with pytest.raises(LegacyPluginError, match="'List\\[int\\]' is not supported"):
        argument_type("List[int]")

    info = native_info(
        PluginInfo(
            name="p",
            arguments={
                "epochs": {"name": "epochs", "type": "int", "description": "d", "optional": False},
                "tag": {"type": "Optional[str]"},  # name defaults to the key
            },
            datasets={"train": {"name": "train", "description": "t", "optional": True}},
        )
    )
    assert [(a.name, a.type, a.optional) for a in info.arguments] == [
        ("epochs", "int", False),
        ("tag", "str", True),
    ]
    assert info.datasets[0].optional
    assert info.arguments_schema()["required"] == ["epochs"]
    with pytest.raises(LegacyPluginError, match="taken by run"):
        native_info(PluginInfo(name="p", arguments={"datasets": {"type": "str"}}))


def test_the_example_and_broken_plugins_are_found_in_a_folder(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(
        textwrap.dedent(
            """
            from chimp.training.plugins.legacy import BasePlugin, PluginInfo

            class Broken(BasePlugin):
                def init(self):
                    self._info = PluginInfo(name="broken", arguments={"x": {"type": "dict"}})
                    return self._info
            """
        )
    )
    example = discover_plugins(EXAMPLE)
    with_broken = discover_plugins(tmp_path)

    info = example.get("tiny_softmax").info
    assert [(a.name, a.type, a.optional) for a in info.arguments] == [
        ("epochs", "int", False),
        ("learning_rate", "float", False),
        ("model_name", "str", True),
    ]
    assert info.model_return_type == "onnx"
    assert "broken" not in with_broken.plugins
    assert any("'dict' is not supported" in e for e in with_broken.errors.values())


class Recorder:
    def __init__(self, production: Path | None = None) -> None:
        self.production = production
        self.stored: list[tuple[str, Path, ModelMetadata | None, dict[str, Any]]] = []

    def get_production_model(
        self, name: str, *, alias: str = "production"
    ) -> ProductionModel | None:
        if self.production is None:
            return None
        return ProductionModel(self.production, None)  # type: ignore[arg-type]

    def store_model(
        self, name: str, onnx_path: Path, metadata: ModelMetadata | None, **kw: Any
    ) -> None:
        self.stored.append((name, onnx_path, metadata, kw))


def legacy_context(tmp_path: Path, connector: Recorder) -> PluginContext:
    (tmp_path / "work").mkdir(exist_ok=True)
    return PluginContext(
        task_id="0123456789",
        arguments={},
        datasets={},
        tmp_dir=tmp_path / "work",
        connector=connector,
        logger=logging.getLogger("test"),
    )


def test_connector_stores_onnx_protos_and_paths_and_names_what_it_cannot(tmp_path: Path) -> None:
    from chimp.training.plugins.legacy import Connector

    path = make_tiny_onnx(tmp_path / "m.onnx", ["a", "b"], ModelMetadata.model_validate(
        {"task": "image-classification", "labels": ["a", "b"],
         "input": {"height": 4, "width": 4}}
    ).input)  # fmt: skip
    recorder = Recorder(production=path)
    connector = Connector(legacy_context(tmp_path, recorder), "p")

    connector.store_model("exp", onnx.load(str(path)), "onnx", hyperparameters={"k": 1})
    connector.store_model("exp", str(path), "ONNX", model_name="named", metrics={"acc": 0.5})
    with pytest.raises(LegacyPluginError, match=r"'sklearn' is not supported; CHIMP stores"):
        connector.store_model("exp", object(), "sklearn")
    with pytest.raises(LegacyPluginError, match=r"takes an onnx\.ModelProto"):
        connector.store_model("exp", {"weights": 1}, "onnx")
    fetched = connector.get_production_model(tmp_path / "prod", "named", "exp")

    assert [(name, meta) for name, _, meta, _ in recorder.stored] == [
        ("exp", None),
        ("named", None),
    ]
    assert recorder.stored[0][3]["params"] == {"k": 1}
    assert recorder.stored[1][3]["tags"] == {"chimp.legacy.experiment": "exp"}
    assert onnx.load(str(recorder.stored[0][1])).graph.input[0].name == "input"
    assert fetched == str(tmp_path / "prod" / "model.onnx")
    assert (
        Connector(legacy_context(tmp_path, Recorder()), "p").get_production_model(tmp_path, "x")
        is None
    )


@pytest.mark.slow
async def test_the_example_trains_registers_and_is_served(
    make_settings: SettingsFactory,
    mlflow_uri: str,
    model_name: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    labels = ["angry", "happy", "sad"]
    folder = write_folder_dataset(tmp_path / "faces", per_label=8, labels=labels, size=32)
    dataset = zip_folder(folder, tmp_path / "faces.zip")
    settings = make_settings(mlflow_uri=mlflow_uri, plugin_dir=EXAMPLE)
    async with api_client(settings) as client, running_worker(settings):
        listed = {p["name"]: p for p in (await client.get("/plugins")).json()}
        bad = await client.post(
            "/tasks/run/tiny_softmax",
            json={"arguments": {"epochs": "many", "colour": 1}, "datasets": {"train": "faces"}},
        )
        queued_after_bad = (await client.get("/tasks")).json()
        with dataset.open("rb") as fh:
            uploaded = await client.post(
                "/datasets",
                files={"file": ("faces.zip", fh, "application/zip")},
                data={"dataset_name": "faces"},
            )
        assert uploaded.status_code == 201, uploaded.text
        started = await client.post(
            "/tasks/run/tiny_softmax",
            json={
                "arguments": {"epochs": 60, "learning_rate": 0.05, "model_name": model_name},
                "datasets": {"train": "faces"},
            },
        )
        assert started.status_code == 202, started.text
        task = await wait_for_task(client, started.json()["task_id"], timeout_s=300)
        versions = (await client.get(f"/models/{model_name}/versions")).json()

    schema = listed["tiny_softmax"]["argument_schema"]
    assert schema["properties"]["epochs"]["type"] == "integer"
    assert sorted(schema["required"]) == ["epochs", "learning_rate"]
    assert bad.status_code == 422
    fields = {".".join(d["loc"]) for d in bad.json()["detail"]}
    assert {"arguments.epochs", "arguments.colour", "arguments.learning_rate"} <= fields
    assert queued_after_bad == []
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert task.result is not None
    assert task.result["result"].startswith("trained on 24 images")
    (version,) = versions
    assert version["aliases"] == ["production"]
    assert version["metadata"]["labels"] == labels
    assert version["tags"]["warm_start"] == "False"
    assert "train_accuracy" in version["metrics"]

    serving = ServingSettings(
        data_dir=tmp_path / "serving",
        model_name=model_name,
        mlflow=MlflowConfig(tracking_uri=mlflow_uri),
        serving=ServingConfig(poll_interval_s=0.2),
    )
    happy = (folder / "train" / "happy").iterdir().__next__().read_bytes()
    batch = np.random.default_rng(0).random((2, 1, 24, 24), dtype=np.float32)
    async with serve(serving) as served:
        predicted = await served.post(
            f"/models/{model_name}/predict-image?mode=whole", content=happy
        )
        infer = await served.post(
            f"/v2/models/{model_name}/infer",
            json={"inputs": [{"name": "input", "shape": [2, 1, 24, 24], "datatype": "FP32",
                              "data": batch.ravel().tolist()}]},
        )  # fmt: skip

    assert predicted.status_code == 200, predicted.text
    (face,) = predicted.json()["faces"]
    assert set(face["scores"]) == set(labels)
    assert face["label"] == "happy"  # learnt: the training image is recognised
    assert infer.status_code == 200
    assert infer.json()["outputs"][0]["shape"] == [2, 3]
