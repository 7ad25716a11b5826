"""The Open Inference Protocol's binary tensor extension, driven by NVIDIA's ``tritonclient.http``.

The client is used the ordinary way (its defaults send binary inputs and, with no outputs named,
ask for binary outputs), against the real serving app on a socket and a real MLflow registry.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from chimp.shared.registry import ModelRegistry
from tests.fixtures.onnx_models import make_every_type_onnx
from tests.serving.conftest import (
    log_plain_onnx,
    register_version,
    serve,
    serve_tcp,
    serving_settings,
)
from tests.serving.test_tensors import SAMPLES

HEADER = "Inference-Header-Content-Length"


def expected_logits(tmp_path: Path, batch: np.ndarray, seed: int = 1) -> np.ndarray:
    session = ort.InferenceSession(str(tmp_path / f"model-{seed}.onnx"))
    (logits,) = session.run(["logits"], {"input": batch})
    return np.asarray(logits)


def image_input(batch: np.ndarray, *, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    return tensor


async def test_tritonclient_with_its_defaults_gets_binary_answers(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    batch = np.random.default_rng(3).random((2, 1, 48, 48), dtype=np.float32)

    with serve_tcp(serving_settings(tmp_path, mlflow_uri, model_name)) as url:
        client = triton.InferenceServerClient(url)
        try:
            # No outputs named: the client asks for every output as binary data.
            result = client.infer(model_name, [image_input(batch)])
            by_version = client.infer(model_name, [image_input(batch)], model_version="1")
            metadata = client.get_model_metadata(model_name)
            server = client.get_server_metadata()
            ready = client.is_model_ready(model_name) and client.is_server_ready()
        finally:
            client.close()

    logits = result.as_numpy("logits")
    assert logits is not None
    assert logits.dtype == np.float32
    assert logits.shape == (2, 7)
    assert np.allclose(logits, expected_logits(tmp_path, batch), atol=1e-5)
    assert result.get_output("logits")["parameters"] == {"binary_data_size": 2 * 7 * 4}
    assert result.get_response()["model_version"] == "1"
    assert np.array_equal(by_version.as_numpy("logits"), logits)
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 48, 48]}]
    assert "binary_tensor_data" in server["extensions"]
    assert ready


async def test_tritonclient_json_and_mixed_outputs_for_every_datatype(
    model_name: str, mlflow_uri: str, tmp_path: Path
) -> None:
    # A plain ONNX model (registered without CHIMP) with one input and output per datatype.
    log_plain_onnx(mlflow_uri, model_name, make_every_type_onnx(tmp_path / "every.onnx"))
    types = sorted(SAMPLES)
    inputs = []
    for index, datatype in enumerate(types):
        tensor = triton.InferInput(f"in_{datatype}", [1, 3], datatype)
        # Every other input as binary data, the others as JSON.
        tensor.set_data_from_numpy(SAMPLES[datatype], binary_data=index % 2 == 0)
        inputs.append(tensor)
    # Outputs alternate the other way round: the answer mixes JSON and binary tensors.
    outputs = [
        triton.InferRequestedOutput(f"out_{datatype}", binary_data=index % 2 == 1)
        for index, datatype in enumerate(types)
    ]
    json_only = [triton.InferRequestedOutput(f"out_{t}", binary_data=False) for t in types]

    with serve_tcp(serving_settings(tmp_path, mlflow_uri, model_name)) as url:
        client = triton.InferenceServerClient(url)
        try:
            mixed = client.infer(model_name, inputs, outputs=outputs)
            as_json = client.infer(model_name, inputs, outputs=json_only)
            defaults = client.infer(model_name, inputs)
            with pytest.raises(InferenceServerException) as refused:
                client.infer(
                    model_name,
                    inputs,
                    outputs=[triton.InferRequestedOutput("out_FP32", class_count=2)],
                )
        finally:
            client.close()

    for index, datatype in enumerate(types):
        name = f"out_{datatype}"
        sent = SAMPLES[datatype]
        entry = mixed.get_output(name)
        assert entry["datatype"] == datatype
        assert ("parameters" in entry) == (index % 2 == 1), name  # binary where asked
        assert "data" not in as_json.get_output(name).get("parameters", {}), name
        for result in (mixed, as_json, defaults):
            got = result.as_numpy(name)
            assert got is not None, name
            if datatype == "BYTES":  # tritonclient hands binary strings back as bytes
                got = np.array([[_text(v) for v in row] for row in got], dtype=object)
            assert got.shape == sent.shape, name
            assert got.tolist() == sent.tolist(), name
    assert "classification" in str(refused.value)


async def test_hostile_binary_bodies_are_clear_400s(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    infer = f"/v2/models/{model_name}/infer"
    data = np.zeros((1, 1, 48, 48), dtype=np.float32).tobytes()

    def body(size: int = len(data), extra: bytes = b"", cut: int = 0) -> tuple[bytes, str]:
        header = json.dumps(
            {"inputs": [{"name": "input", "shape": [1, 1, 48, 48], "datatype": "FP32",
                         "parameters": {"binary_data_size": size}}]}
        ).encode()  # fmt: skip
        whole = header + data + extra
        return whole[: len(whole) - cut], str(len(header))

    good, good_length = body()
    cases = {
        "bytes left over": (body(extra=b"\0" * 8), None),
        "sizes do not add up": (body(size=len(data) - 4), None),
        "truncated body": (body(cut=100), None),
        "header length past the body": ((good, str(len(good) + 10)), None),
        "header length not a number": ((good, "12abc"), None),
        "header length zero": ((good, "0"), None),
        "header length cuts the JSON": ((good, str(int(good_length) - 5)), None),
        "binary size without the header": ((good, None), None),
        "binary size is not whole": (body(size=-8), None),
        "truncated gzip": (body(), "gzip-cut"),
        "unknown content encoding": (body(), "br"),
    }
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        answers = {}
        for case, ((content, length), encoding) in cases.items():
            headers = {"content-type": "application/octet-stream"}
            if length is not None:
                headers[HEADER] = length
            if encoding == "gzip-cut":
                content = gzip.compress(content)[:-20]
                headers["content-encoding"] = "gzip"
            elif encoding is not None:
                headers["content-encoding"] = encoding
            answers[case] = await client.post(infer, content=content, headers=headers)
        gzipped = await client.post(
            infer,
            content=gzip.compress(good),
            headers={HEADER: good_length, "content-encoding": "gzip"},
        )
        fine = await client.post(infer, content=good, headers={HEADER: good_length})

    got = {case: (r.status_code, r.json().get("code")) for case, r in answers.items()}
    assert got == {
        "bytes left over": (400, "invalid_binary_data"),
        "sizes do not add up": (400, "invalid_binary_data"),
        "truncated body": (400, "invalid_binary_data"),
        "header length past the body": (400, "invalid_binary_data"),
        "header length not a number": (400, "invalid_binary_data"),
        "header length zero": (400, "invalid_binary_data"),
        "header length cuts the JSON": (422, "validation_error"),
        "binary size without the header": (400, "invalid_binary_data"),
        "binary size is not whole": (400, "invalid_binary_data"),
        "truncated gzip": (400, "bad_request"),
        "unknown content encoding": (415, "unsupported_media_type"),
    }
    for case, response in answers.items():
        assert response.json()["error"], case  # the spec's {"error": ...}, saying what is wrong
    assert "add up to" in answers["bytes left over"].json()["error"]
    assert "only" in answers["truncated body"].json()["error"]
    assert "whole body is only" in answers["header length past the body"].json()["error"]
    for response in (gzipped, fine):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert len(response.json()["outputs"][0]["data"]) == 7


async def test_binary_and_json_answers_agree_without_a_client_library(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    batch = np.random.default_rng(5).random((3, 1, 48, 48), dtype=np.float32)
    tensor = {"name": "input", "shape": [3, 1, 48, 48], "datatype": "FP32"}
    header = json.dumps(
        {"id": "b1", "inputs": [{**tensor, "parameters": {"binary_data_size": batch.nbytes}}],
         "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}
    ).encode()  # fmt: skip
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        binary = await client.post(
            f"/v2/models/{model_name}/infer",
            content=header + batch.tobytes(),
            headers={HEADER: str(len(header))},
        )
        as_json = await client.post(
            f"/v2/models/{model_name}/infer",
            json={"inputs": [{**tensor, "data": batch.ravel().tolist()}]},
        )

    assert binary.status_code == 200
    assert binary.headers["content-type"] == "application/octet-stream"
    length = int(binary.headers[HEADER])
    answer = json.loads(binary.content[:length])
    (output,) = answer["outputs"]
    assert answer["id"] == "b1"
    assert output == {
        "name": "logits",
        "shape": [3, 7],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 3 * 7 * 4},
    }
    logits = np.frombuffer(binary.content[length:], dtype="<f4").reshape(3, 7)
    assert np.allclose(logits, expected_logits(tmp_path, batch), atol=1e-5)
    assert np.allclose(logits.ravel(), as_json.json()["outputs"][0]["data"], atol=1e-6)


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
