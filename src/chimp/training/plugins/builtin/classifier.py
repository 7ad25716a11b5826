"""A compact CNN image classifier in PyTorch: train, evaluate, export to ONNX, reload.

The network has no batch norm on purpose: the ONNX exporter keeps every parameter as an
initializer under its PyTorch name, so a registered ONNX model is enough to fine-tune from
(:func:`load_onnx_weights`) and calibration needs no second artifact.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from chimp.shared.schemas.models import InputSpec
from chimp.training.plugins.builtin.image_data import Split

logger = logging.getLogger(__name__)

ONNX_RTOL = 1e-3
ONNX_ATOL = 1e-4
ONNX_OPSET = 17


class CompactCNN(nn.Module):
    """Conv-ReLU-pool blocks (width doubling), global average pooling, a linear head.

    Sized for CPU training in minutes: about 0.1 M parameters and 20 M multiply-adds per
    48x48 image at the default width.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for multiplier in (1, 2, 4):
            out = width * multiplier
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits


@dataclass
class FitConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int = 0
    flip: bool = True  # horizontal flips: faces and most objects are mirror-symmetric


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    predictions: npt.NDArray[np.int64]
    confidences: npt.NDArray[np.float32]  # the top softmax score of each prediction


@dataclass
class History:
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, **metrics: float) -> None:
        for key, value in metrics.items():
            self.values.setdefault(key, []).append(float(value))


BatchHook = Callable[[int, float, dict[str, float]], None]
"""Called after each batch (epoch, fraction of this epoch done, metrics so far)."""

EpochHook = Callable[[int, dict[str, float]], None]
"""Called after each epoch (epoch, its train and held-out metrics)."""


def evaluate(model: nn.Module, data: Split, batch_size: int = 256) -> EvalResult:
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss = 0.0
    predictions: list[npt.NDArray[np.int64]] = []
    confidences: list[npt.NDArray[np.float32]] = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            x = torch.from_numpy(data.images[start : start + batch_size])
            y = torch.from_numpy(data.targets[start : start + batch_size])
            logits = model(x)
            total_loss += loss_fn(logits, y).item()
            predictions.append(logits.argmax(dim=1).numpy().astype(np.int64))
            confidences.append(torch.softmax(logits, dim=1).amax(dim=1).numpy())
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    count = max(1, len(data))
    return EvalResult(
        loss=total_loss / count,
        accuracy=float((predicted == data.targets).sum()) / count,
        predictions=predicted,
        confidences=np.concatenate(confidences) if confidences else np.zeros(0, np.float32),
    )


def fit(
    model: nn.Module,
    train: Split,
    held_out: Split | None,
    config: FitConfig,
    *,
    on_batch: BatchHook,
    check_cancelled: Callable[[], None],
    on_epoch: EpochHook | None = None,
) -> History:
    """Train with Adam and cross-entropy; per-epoch train/val loss and accuracy in the history."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    images, targets = torch.from_numpy(train.images), torch.from_numpy(train.targets)
    history = History()
    batches = max(1, -(-len(train) // config.batch_size))
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        seen, correct, loss_sum = 0, 0, 0.0
        for batch in range(batches):
            check_cancelled()
            index = order[batch * config.batch_size : (batch + 1) * config.batch_size]
            x, y = images[index], targets[index]
            if config.flip:
                flip = torch.rand(len(index), generator=generator) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            optimizer.zero_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            seen += len(index)
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(dim=1) == y).sum())
            on_batch(epoch, (batch + 1) / batches, {"train_loss": loss_sum / seen})
        metrics = {"train_loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen)}
        if held_out is not None and len(held_out):
            result = evaluate(model, held_out)
            metrics |= {"val_loss": result.loss, "val_accuracy": result.accuracy}
        history.add(**metrics)
        logger.info("epoch %d/%d: %s", epoch + 1, config.epochs, metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return history


def export_onnx(model: nn.Module, spec: InputSpec, path: Path) -> Path:
    """Export with a dynamic batch axis and ``spec``'s tensor names, as one self-contained file.

    The TorchScript exporter takes well under a second for this network where the dynamo
    exporter takes several; the dynamo one is the fallback for a torch without the former.
    Both keep parameters as initializers named like the ``state_dict``.
    """
    model.eval()
    example = torch.zeros(2, spec.channels, spec.height, spec.width)
    # The exporters warn about their own deprecations and print their steps.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamic_axes={spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}},
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=[spec.input_name],
                output_names=[spec.output_name],
            )
        except (TypeError, RuntimeError, NotImplementedError) as exc:
            logger.info("TorchScript ONNX export unavailable (%s); using dynamo", exc)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                dynamo=True,
                external_data=False,
                input_names=[spec.input_name],
                output_names=[spec.output_name],
            )
    return path


def verify_onnx(model: nn.Module, path: Path, spec: InputSpec, sample: Split) -> float:
    """Max absolute difference between ONNX Runtime and PyTorch on ``sample``; raise if too big."""
    model.eval()
    x = sample.images[:32]
    if len(x) == 0:
        x = (
            np.random.default_rng(0)
            .random((4, spec.channels, spec.height, spec.width))
            .astype(np.float32)
        )
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run([spec.output_name], {spec.input_name: x})
    if actual.shape != expected.shape or not np.allclose(
        actual, expected, rtol=ONNX_RTOL, atol=ONNX_ATOL
    ):
        raise RuntimeError("the exported ONNX model does not reproduce the PyTorch outputs")
    return float(np.abs(actual - expected).max())


def load_onnx_weights(model: nn.Module, path: Path) -> None:
    """Copy an exported model's initializers back into ``model`` (same architecture)."""
    initializers = {
        t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
    }
    state = model.state_dict()
    missing = [
        name
        for name, tensor in state.items()
        if name not in initializers or tuple(initializers[name].shape) != tuple(tensor.shape)
    ]
    if missing:
        raise ValueError(f"the ONNX model does not match this architecture (e.g. {missing[0]})")
    model.load_state_dict({name: torch.from_numpy(initializers[name].copy()) for name in state})
