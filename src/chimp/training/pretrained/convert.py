"""Keras HDF5 weights -> PyTorch mini-Xception -> checked ONNX model with CHIMP metadata.

Checks on the way, each one fatal:

1. the file's layer graph is mini-Xception's and every weight fits its PyTorch parameter
   (:func:`.keras_weights.build_model`);
2. the network with its batch norms folded into the convolutions gives the same outputs as the
   network with batch norm, on probe inputs;
3. the outputs are sane: finite, and a softmax over them sums to one;
4. ONNX Runtime reproduces PyTorch's outputs on the probe inputs within ``ONNX_TOLERANCE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.training.plugins.builtin import classifier
from chimp.training.plugins.builtin.image_data import FER2013_LABELS
from chimp.training.pretrained.architecture import MiniXception, fold_batch_norm
from chimp.training.pretrained.keras_weights import WeightFileError, build_model, read_keras_file

ONNX_TOLERANCE = 1e-4
FOLD_TOLERANCE = 1e-4
PROBES = 8

ARCHITECTURE = "mini_xception"
DATASET = "FER2013"

# What the weights were trained on: 64x64 gray faces, pixels scaled to [-1, 1]
# ((x / 255 - 0.5) / 0.5), FER2013's label order.
INPUT_SPEC = InputSpec(
    height=64, width=64, channels=1, color="gray", scale=1.0 / 255.0, mean=[0.5], std=[0.5]
)


class ConversionError(RuntimeError):
    """A check of the conversion failed; the model is not registered."""


@dataclass(frozen=True)
class ConvertedModel:
    onnx_path: Path
    metadata: ModelMetadata
    parameters: int
    fold_max_abs_diff: float
    onnx_max_abs_diff: float


def pretrained_metadata() -> ModelMetadata:
    return ModelMetadata(
        task="face-classification",
        labels=list(FER2013_LABELS),
        input=INPUT_SPEC,
        dataset=DATASET,
        outputs_probabilities=False,
    )


def probe_inputs(count: int = PROBES, seed: int = 0) -> npt.NDArray[np.float32]:
    """Inputs in the model's range: smooth random images, a flat gray one, black and white."""
    rng = np.random.default_rng(seed)
    side = INPUT_SPEC.height
    coarse = rng.uniform(-1, 1, size=(count - 3, 1, side // 8, side // 8)).astype(np.float32)
    smooth = np.kron(coarse, np.ones((1, 1, 8, 8), dtype=np.float32))
    noise = rng.normal(0, 0.1, size=smooth.shape).astype(np.float32)
    flats = [np.full((1, 1, side, side), v, dtype=np.float32) for v in (0.0, -1.0, 1.0)]
    probes: npt.NDArray[np.float32] = np.clip(np.concatenate([smooth + noise, *flats]), -1, 1)
    return probes.astype(np.float32)


def load_network(weights: bytes) -> MiniXception:
    """The PyTorch network with batch norm, as the weight file describes it."""
    try:
        return build_model(read_keras_file(weights))
    except WeightFileError as exc:
        raise ConversionError(f"cannot convert the weight file: {exc}") from exc


def convert(weights: bytes, out_dir: Path) -> ConvertedModel:
    """Convert the HDF5 bytes and write ``out_dir/model.onnx``; every check above must pass."""
    with_norm = load_network(weights)
    folded = fold_batch_norm(with_norm)
    probes = probe_inputs()
    with torch.no_grad():
        reference = with_norm(torch.from_numpy(probes))
        logits = folded(torch.from_numpy(probes))
    fold_diff = float((reference - logits).abs().max())
    if fold_diff > FOLD_TOLERANCE:
        raise ConversionError(f"folding batch norm changed the outputs by {fold_diff:.2e}")
    probabilities = torch.softmax(logits, dim=1)
    if not torch.isfinite(logits).all() or not torch.allclose(
        probabilities.sum(dim=1), torch.ones(len(probes)), atol=1e-5
    ):
        raise ConversionError("the converted network gives non-finite outputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = classifier.export_onnx(folded, INPUT_SPEC, out_dir / "model.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (from_onnx,) = session.run([INPUT_SPEC.output_name], {INPUT_SPEC.input_name: probes})
    onnx_diff = float(np.abs(from_onnx - logits.numpy()).max())
    if onnx_diff > ONNX_TOLERANCE:
        raise ConversionError(
            f"ONNX Runtime differs from PyTorch by {onnx_diff:.2e} (> {ONNX_TOLERANCE:g})"
        )
    return ConvertedModel(
        onnx_path=onnx_path,
        metadata=pretrained_metadata(),
        parameters=sum(p.numel() for p in folded.parameters()),
        fold_max_abs_diff=fold_diff,
        onnx_max_abs_diff=onnx_diff,
    )
