"""Importing models made elsewhere: an ONNX file plus its metadata becomes a served version, a
plain MLflow version gets metadata added, and whatever does not fit is refused with the
message serving would give, before anything is registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import onnx
import pytest
from pydantic import SecretStr

from chimp.serving.config import ServingConfig, ServingSettings
from chimp.shared.cli import EXIT_USAGE
from chimp.shared.model_fit import ModelMismatchError, check_fits, read_graph
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.settings import MlflowConfig
from chimp.training import cli
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.frontend.browser import serve as serve_tcp
from tests.serving.conftest import face_jpeg, log_plain_onnx, serve
from tests.training.conftest import SettingsFactory, api_client
from tests.training.synthetic import write_folder_dataset, zip_folder

# Shaped like the ONNX Model Zoo's FER+ emotion model: 64x64 gray, 8 logits, its tensor names.
FERPLUS_LABELS = [
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
]  # fmt: skip
FERPLUS_SPEC = InputSpec(
    height=64, width=64, channels=1, color="gray", scale=1.0,
    input_name="Input3", output_name="Plus692_Output_0",
)  # fmt: skip
TOKEN = "imp0rt"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def ferplus_like(path: Path) -> Path:
    return make_tiny_onnx(path, FERPLUS_LABELS, FERPLUS_SPEC, seed=8)


def metadata_form(labels: list[str], **spec: object) -> str:
    """Metadata as a user writes it: no tensor names (taken from the graph)."""
    size = {"height": 64, "width": 64, "channels": 1, "color": "gray", "scale": 1.0}
    return json.dumps({"task": "face-classification", "labels": labels, "input": {**size, **spec}})


async def test_an_imported_model_is_registered_and_served(
    make_settings: SettingsFactory, mlflow_uri: str, model_name: str, tmp_path: Path
) -> None:
    settings = make_settings(mlflow_uri=mlflow_uri)
    settings.auth.token = SecretStr(TOKEN)
    onnx_path = ferplus_like(tmp_path / "ferplus.onnx")
    async with api_client(settings) as client:
        with onnx_path.open("rb") as fh:
            first = await client.post(
                f"/models/{model_name}/versions",
                files={"file": ("emotion-ferplus-8.onnx", fh)},
                data={"metadata": metadata_form(FERPLUS_LABELS)},
                headers=AUTH,
            )
        with onnx_path.open("rb") as fh:
            second = await client.post(
                f"/models/{model_name}/versions",
                files={"file": ("again.onnx", fh)},
                data={"metadata": metadata_form(FERPLUS_LABELS)},
                headers=AUTH,
            )

    assert first.status_code == 201, first.text
    version = first.json()["version"]
    assert first.json()["decision"]["verdict"] == "first"
    assert version["aliases"] == ["production"]
    assert version["metadata"]["labels"] == FERPLUS_LABELS
    assert version["metadata"]["input"]["input_name"] == "Input3"  # from the graph
    assert version["metadata"]["input"]["output_name"] == "Plus692_Output_0"
    assert version["tags"]["chimp.imported_from"] == "emotion-ferplus-8.onnx"
    assert second.status_code == 201
    # Gated like a trained version: with a champion and no evaluation data it is not promoted.
    assert second.json()["decision"]["verdict"] == "rejected"
    assert "no evaluation data" in second.json()["decision"]["reason"]
    assert second.json()["version"]["aliases"] == ["staging"]

    serving = ServingSettings(
        data_dir=tmp_path / "serving",
        model_name=model_name,
        mlflow=MlflowConfig(tracking_uri=mlflow_uri),
        serving=ServingConfig(poll_interval_s=0.2),
    )
    pixels = np.full((1, 1, 64, 64), 128.0, dtype=np.float32)
    async with serve(serving) as served:
        predicted = await served.post(f"/models/{model_name}/predict-image", content=face_jpeg())
        infer = await served.post(
            f"/v2/models/{model_name}/infer",
            json={"inputs": [{"name": "Input3", "shape": [1, 1, 64, 64], "datatype": "FP32",
                              "data": pixels.ravel().tolist()}]},
        )  # fmt: skip

    assert predicted.status_code == 200, predicted.text
    (face,) = predicted.json()["faces"]
    assert set(face["scores"]) == set(FERPLUS_LABELS)
    assert predicted.json()["model"]["version"] == version["version"]
    assert infer.json()["outputs"][0]["name"] == "Plus692_Output_0"
    assert infer.json()["outputs"][0]["shape"] == [1, 8]


async def test_imports_that_do_not_fit_are_refused_and_nothing_is_registered(
    make_settings: SettingsFactory, mlflow_uri: str, model_name: str, tmp_path: Path
) -> None:
    settings = make_settings(mlflow_uri=mlflow_uri)
    settings.auth.token = SecretStr(TOKEN)
    onnx_path = ferplus_like(tmp_path / "ferplus.onnx")
    seven = FERPLUS_LABELS[:7]
    # What serving says of a version whose graph outputs 8 scores for 7 labels.
    metadata = ModelMetadata(task="face-classification", labels=seven, input=FERPLUS_SPEC)
    with pytest.raises(ModelMismatchError) as serving_says:
        check_fits(read_graph(onnx_path), metadata)
    cases = {
        "7 labels for 8 outputs": (onnx_path.read_bytes(), metadata_form(seven)),
        "48x48 for a 64x64 graph": (
            onnx_path.read_bytes(),
            metadata_form(FERPLUS_LABELS, height=48, width=48),
        ),
        "rgb for a gray graph": (
            onnx_path.read_bytes(),
            metadata_form(FERPLUS_LABELS, channels=3, color="rgb"),
        ),
        "unknown input name": (
            onnx_path.read_bytes(),
            metadata_form(FERPLUS_LABELS, input_name="pixels"),
        ),
        "no labels": (onnx_path.read_bytes(), metadata_form([])),
        "metadata not json": (onnx_path.read_bytes(), "{labels: oops"),
        "not an onnx file": (b"\x00garbage\xff" * 10, metadata_form(FERPLUS_LABELS)),
        "empty file": (b"", metadata_form(FERPLUS_LABELS)),
    }
    async with api_client(settings) as client:
        answers = {
            case: await client.post(
                f"/models/{model_name}/versions",
                files={"file": ("m.onnx", content)},
                data={"metadata": form},
                headers=AUTH,
            )
            for case, (content, form) in cases.items()
        }
        without_token = await client.post(
            f"/models/{model_name}/versions",
            files={"file": ("m.onnx", onnx_path.read_bytes())},
            data={"metadata": metadata_form(FERPLUS_LABELS)},
        )
        bad_name = await client.post(
            "/models/not%3Aallowed/versions",
            files={"file": ("m.onnx", onnx_path.read_bytes())},
            data={"metadata": metadata_form(FERPLUS_LABELS)},
            headers=AUTH,
        )
        registered = await client.get(f"/models/{model_name}/versions", headers=AUTH)

    got = {case: (r.status_code, r.json()["code"]) for case, r in answers.items()}
    assert got == {
        "7 labels for 8 outputs": (422, "model_mismatch"),
        "48x48 for a 64x64 graph": (422, "model_mismatch"),
        "rgb for a gray graph": (422, "model_mismatch"),
        "unknown input name": (422, "model_mismatch"),
        "no labels": (422, "validation_error"),
        "metadata not json": (422, "validation_error"),
        "not an onnx file": (422, "invalid_input"),
        "empty file": (422, "invalid_input"),
    }
    # The one rule: the API refuses with the message serving gives for such a version.
    assert answers["7 labels for 8 outputs"].json()["error"] == serving_says.value.message
    assert "[N, 1, 48, 48]" in answers["48x48 for a 64x64 graph"].json()["error"]
    assert "metadata.labels" in answers["no labels"].json()["error"]
    assert without_token.status_code == 401
    assert bad_name.status_code == 400
    assert registered.status_code == 404  # nothing half-registered


async def test_metadata_is_added_to_a_plain_mlflow_version_through_the_cli(
    make_settings: SettingsFactory,
    mlflow_uri: str,
    model_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(mlflow_uri=mlflow_uri)
    settings.auth.token = SecretStr(TOKEN)
    onnx_path = ferplus_like(tmp_path / "ferplus.onnx")
    version = log_plain_onnx(mlflow_uri, model_name, onnx.load(str(onnx_path)))
    monkeypatch.setenv("CHIMP_AUTH__TOKEN", TOKEN)
    labels = ",".join(FERPLUS_LABELS)
    flags = ["--labels", labels, "--input", "64x64", "--color", "gray", "--scale", "1"]
    from chimp.training.app import create_app

    with serve_tcp(create_app(settings)) as url:
        wrong = cli.main(
            ["--url", url, "models", "set-metadata", model_name, version,
             "--labels", "a,b", "--input", "64x64"]
        )  # fmt: skip
        wrong_err = capsys.readouterr().err
        added = cli.main(["--url", url, "models", "set-metadata", model_name, version, *flags])
        added_out = capsys.readouterr().out
        imported = cli.main(
            ["--url", url, "models", "import", f"{model_name}-cli", str(onnx_path), *flags,
             "--task", "face-classification"]
        )  # fmt: skip
        imported_out = capsys.readouterr().out
        async with api_client(settings) as client:
            described = (
                await client.get(f"/models/{model_name}/versions/{version}", headers=AUTH)
            ).json()

    assert wrong == EXIT_USAGE  # the API refused it (4xx): a mistake to fix
    assert "2 labels" in wrong_err
    assert added == 0
    assert f"{model_name} version {version} (production)" in added_out
    assert described["metadata"]["labels"] == FERPLUS_LABELS
    assert described["metadata"]["input"]["scale"] == 1.0
    assert described["metadata"]["input"]["input_name"] == "Input3"
    assert imported == 0
    assert f"{model_name}-cli version 1 (production)" in imported_out
    assert "gate: first" in imported_out


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return image.astype(np.float32).ravel() / 255


def linear_onnx(path: Path, weights: np.ndarray, bias: np.ndarray, spec: InputSpec) -> Path:
    """``logits = flatten(x) @ weights + bias`` with the spec's tensor names."""
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Flatten", [spec.input_name], ["flat"], axis=1),
            onnx.helper.make_node("MatMul", ["flat", "w"], ["scores"]),
            onnx.helper.make_node("Add", ["scores", "b"], [spec.output_name]),
        ],
        "linear",
        [onnx.helper.make_tensor_value_info(
            spec.input_name, onnx.TensorProto.FLOAT,
            ["batch", spec.channels, spec.height, spec.width])],
        [onnx.helper.make_tensor_value_info(
            spec.output_name, onnx.TensorProto.FLOAT, ["batch", weights.shape[1]])],
        initializer=[
            onnx.numpy_helper.from_array(weights.astype(np.float32), "w"),
            onnx.numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


async def test_an_import_goes_through_the_gate_with_the_policys_evaluation_data(
    make_settings: SettingsFactory, mlflow_uri: str, model_name: str, tmp_path: Path
) -> None:
    labels = ["angry", "happy", "sad"]
    spec = InputSpec(height=32, width=32, channels=1, color="gray")
    folder = write_folder_dataset(tmp_path / "eval", per_label=6, labels=labels, size=32)
    # A nearest-mean classifier built from the evaluation images (good), and random weights.
    templates = np.stack(
        [
            np.mean([read_gray(p) for p in sorted((folder / "train" / label).iterdir())], axis=0)
            for label in labels
        ]
    )
    good = linear_onnx(tmp_path / "good.onnx", templates.T, -0.5 * (templates**2).sum(1), spec)
    rng = np.random.default_rng(0)
    weak = [
        linear_onnx(tmp_path / f"weak{i}.onnx", rng.normal(0, 0.01, (1024, 3)), np.zeros(3), spec)
        for i in (1, 2)
    ]
    form = json.dumps({"task": "image-classification", "labels": labels, "input": {
        "height": 32, "width": 32, "channels": 1, "color": "gray"}})  # fmt: skip
    settings = make_settings(mlflow_uri=mlflow_uri)
    settings.auth.token = SecretStr(TOKEN)

    async def imported(client: httpx.AsyncClient, path: Path) -> dict[str, Any]:
        with path.open("rb") as fh:
            response = await client.post(
                f"/models/{model_name}/versions",
                files={"file": (path.name, fh)},
                data={"metadata": form},
                headers=AUTH,
            )
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async with api_client(settings) as client:
        with zip_folder(folder, tmp_path / "eval.zip").open("rb") as fh:
            uploaded = await client.post(
                "/datasets",
                files={"file": ("eval.zip", fh, "application/zip")},
                data={"dataset_name": f"eval-{model_name}"},
                headers=AUTH,
            )
        assert uploaded.status_code == 201, uploaded.text
        first = await imported(client, weak[0])
        policy = await client.put(
            f"/models/{model_name}/policy",
            json={"evaluation_dataset": f"eval-{model_name}", "min_improvement": 0.05},
            headers=AUTH,
        )
        assert policy.status_code == 200, policy.text
        better = await imported(client, good)
        worse = await imported(client, weak[1])
        aliases = (await client.get(f"/models/{model_name}/versions", headers=AUTH)).json()

    assert first["decision"]["verdict"] == "first"
    assert better["decision"]["verdict"] == "promoted"
    assert better["decision"]["evaluation"]["name"] == f"eval-{model_name}"
    assert better["decision"]["metrics"]["accuracy"]["candidate"] == 1.0
    assert better["version"]["aliases"] == ["production"]
    assert worse["decision"]["verdict"] == "rejected"
    assert worse["version"]["aliases"] == ["staging"]
    by_version = {v["version"]: v["aliases"] for v in aliases}
    assert by_version[better["version"]["version"]] == ["production"]
