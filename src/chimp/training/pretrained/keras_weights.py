"""Read mini-Xception's Keras HDF5 weight file with h5py alone (no TensorFlow, no Keras).

A Keras 2 HDF5 model file holds the model's layer graph as JSON (attribute ``model_config``) and
one group per layer under ``model_weights``, whose ``weight_names`` attribute lists its arrays.
The layer graph is checked against :class:`~.architecture.MiniXception` before any weight is
used, so another network in a file of that name is refused instead of producing nonsense.

Layouts: Keras keeps kernels as (height, width, in, out), depthwise ones as
(height, width, channels, multiplier); PyTorch wants (out, in, height, width).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import torch

from chimp.training.pretrained.architecture import (
    BLOCK_FILTERS,
    STEM_FILTERS,
    ConvUnit,
    MiniXception,
    ResidualBlock,
    SeparableUnit,
)

Array = npt.NDArray[np.float32]


class WeightFileError(ValueError):
    """The file is not a readable Keras HDF5 file of the mini-Xception network."""


@dataclass(frozen=True)
class ConvLayer:
    """What the file says about one convolution: enough to compare with the architecture."""

    name: str
    kind: str  # "Conv2D" or "SeparableConv2D"
    filters: int
    kernel: int
    stride: int
    padding: str
    use_bias: bool
    norm: str | None  # the BatchNormalization layer reading this one's output


@dataclass(frozen=True)
class KerasModel:
    input_shape: tuple[int, int, int]  # (height, width, channels)
    convs: list[ConvLayer]
    weights: dict[str, dict[str, Array]]  # layer -> weight (kernel, gamma, ...) -> array
    keras_version: str


def _expected_layout(classes: int) -> list[tuple[str, int, int, int, str, bool]]:
    layout = [("Conv2D", STEM_FILTERS, 3, 1, "valid", False)] * 2
    for filters in BLOCK_FILTERS:
        layout += [("SeparableConv2D", filters, 3, 1, "same", False)] * 2
        layout.append(("Conv2D", filters, 1, 2, "same", False))
    layout.append(("Conv2D", classes, 3, 1, "same", True))
    return layout


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        layers = config["config"]["layers"]
    except (KeyError, TypeError):
        raise WeightFileError("model_config has no layer list") from None
    if not isinstance(layers, list):
        raise WeightFileError("model_config has no layer list")
    return layers


def _inbound(layer: dict[str, Any]) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    return [str(node[0]) for node in nodes[0]] if nodes else []


def _read_config(file: h5py.File) -> tuple[tuple[int, int, int], list[ConvLayer]]:
    if "model_config" not in file.attrs or "model_weights" not in file:
        raise WeightFileError("not a Keras HDF5 model file (no model_config/model_weights)")
    layers = _layers(json.loads(_text(file.attrs["model_config"])))
    norms = {
        _inbound(layer)[0]: layer["name"]
        for layer in layers
        if layer.get("class_name") == "BatchNormalization" and _inbound(layer)
    }
    shape: tuple[int, int, int] | None = None
    convs: list[ConvLayer] = []
    for layer in layers:
        kind, config = layer.get("class_name"), layer.get("config", {})
        if kind == "InputLayer":
            _, height, width, channels = config["batch_input_shape"]
            shape = (int(height), int(width), int(channels))
        elif kind in ("Conv2D", "SeparableConv2D"):
            kernel, stride = config["kernel_size"], config["strides"]
            if kernel[0] != kernel[1] or stride[0] != stride[1]:
                raise WeightFileError(f"layer {layer['name']}: non-square kernel or stride")
            if config.get("depth_multiplier", 1) != 1 or config.get("activation") != "linear":
                raise WeightFileError(f"layer {layer['name']}: unexpected depth or activation")
            convs.append(
                ConvLayer(
                    name=layer["name"],
                    kind=kind,
                    filters=int(config["filters"]),
                    kernel=int(kernel[0]),
                    stride=int(stride[0]),
                    padding=config["padding"],
                    use_bias=bool(config["use_bias"]),
                    norm=norms.get(layer["name"]),
                )
            )
    if shape is None:
        raise WeightFileError("model_config has no input layer")
    return shape, convs


def _read_weights(group: h5py.Group) -> dict[str, dict[str, Array]]:
    weights: dict[str, dict[str, Array]] = {}
    for layer in group.attrs.get("layer_names", []):
        name = _text(layer)
        arrays: dict[str, Array] = {}
        for weight in group[name].attrs.get("weight_names", []):
            path = _text(weight)
            # "conv2d_1_1/kernel:0" -> "kernel"
            short = path.rsplit("/", 1)[-1].split(":", 1)[0]
            arrays[short] = np.asarray(group[name][path], dtype=np.float32)
        if arrays:
            weights[name] = arrays
    return weights


def read_keras_file(data: bytes) -> KerasModel:
    """Parse the bytes of a Keras HDF5 model file (weights and layer graph)."""
    try:
        with h5py.File(io.BytesIO(data), "r") as file:
            shape, convs = _read_config(file)
            weights = _read_weights(file["model_weights"])
            version = _text(file.attrs.get("keras_version", "unknown"))
    except OSError as exc:
        raise WeightFileError(f"not an HDF5 file: {exc}") from exc
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        if isinstance(exc, WeightFileError):
            raise
        raise WeightFileError(f"unreadable Keras model file: {exc}") from exc
    return KerasModel(input_shape=shape, convs=convs, weights=weights, keras_version=version)


def _check_layout(model: KerasModel) -> int:
    """The number of classes, after checking the file's graph is mini-Xception's."""
    if not model.convs:
        raise WeightFileError("the file has no convolution layers")
    classes = model.convs[-1].filters
    found = [(c.kind, c.filters, c.kernel, c.stride, c.padding, c.use_bias) for c in model.convs]
    expected = _expected_layout(classes)
    if found != expected:
        raise WeightFileError(
            "the file's layers are not mini-Xception's: expected "
            f"{len(expected)} convolutions {expected}, found {len(found)} {found}"
        )
    missing = [c.name for c in model.convs[:-1] if c.norm is None]
    if missing:
        raise WeightFileError(f"convolution(s) without batch normalisation: {missing}")
    return classes


def _units(model: MiniXception) -> Iterator[ConvUnit | SeparableUnit]:
    yield model.stem1
    yield model.stem2
    for block in model.blocks:
        assert isinstance(block, ResidualBlock)
        yield block.first
        yield block.second
        yield block.shortcut


def _tensor(array: Array, shape: torch.Size, what: str) -> torch.Tensor:
    if tuple(array.shape) != tuple(shape):
        raise WeightFileError(f"{what}: shape {array.shape} does not fit {tuple(shape)}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _weights_of(model: KerasModel, layer: str, *names: str) -> list[Array]:
    arrays = model.weights.get(layer, {})
    missing = [n for n in names if n not in arrays]
    if missing:
        raise WeightFileError(f"layer {layer} lacks weight(s) {missing}")
    return [arrays[n] for n in names]


def _load_norm(unit: ConvUnit | SeparableUnit, model: KerasModel, layer: str) -> None:
    norm = unit.norm
    assert isinstance(norm, torch.nn.BatchNorm2d)
    assert norm.running_mean is not None
    assert norm.running_var is not None
    gamma, beta, mean, var = _weights_of(
        model, layer, "gamma", "beta", "moving_mean", "moving_variance"
    )
    norm.weight.copy_(_tensor(gamma, norm.weight.shape, f"{layer}/gamma"))
    norm.bias.copy_(_tensor(beta, norm.bias.shape, f"{layer}/beta"))
    norm.running_mean.copy_(_tensor(mean, norm.running_mean.shape, f"{layer}/moving_mean"))
    norm.running_var.copy_(_tensor(var, norm.running_var.shape, f"{layer}/moving_variance"))


def build_model(model: KerasModel) -> MiniXception:
    """The PyTorch network (with batch norm) holding the file's weights, in inference mode."""
    classes = _check_layout(model)
    channels = model.input_shape[2]
    net = MiniXception(channels, classes, batch_norm=True)
    with torch.no_grad():
        for unit, layer in zip(_units(net), model.convs[:-1], strict=True):
            assert layer.norm is not None
            if isinstance(unit, SeparableUnit):
                depthwise, pointwise = _weights_of(
                    model, layer.name, "depthwise_kernel", "pointwise_kernel"
                )
                unit.depthwise.weight.copy_(
                    _tensor(
                        depthwise.transpose(2, 3, 0, 1), unit.depthwise.weight.shape, layer.name
                    )
                )
                unit.pointwise.weight.copy_(
                    _tensor(
                        pointwise.transpose(3, 2, 0, 1), unit.pointwise.weight.shape, layer.name
                    )
                )
            else:
                (kernel,) = _weights_of(model, layer.name, "kernel")
                unit.conv.weight.copy_(
                    _tensor(kernel.transpose(3, 2, 0, 1), unit.conv.weight.shape, layer.name)
                )
            _load_norm(unit, model, layer.norm)
        head = model.convs[-1]
        kernel, bias = _weights_of(model, head.name, "kernel", "bias")
        net.head.weight.copy_(
            _tensor(kernel.transpose(3, 2, 0, 1), net.head.weight.shape, head.name)
        )
        assert net.head.bias is not None
        net.head.bias.copy_(_tensor(bias, net.head.bias.shape, f"{head.name}/bias"))
    return net.eval()
