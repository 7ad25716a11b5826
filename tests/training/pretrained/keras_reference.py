"""An independent reference: the Keras model file's own layer graph, run in NumPy.

It walks ``model_config`` layer by layer with TensorFlow's semantics (channels last, "same"
padding with any odd pixel after, batch norm with the layer's epsilon, softmax at the end) and
reads each weight straight from the HDF5 file. It shares no code with the converter, so
agreeing with it checks the PyTorch re-implementation, its weight layouts and its padding.
"""

from __future__ import annotations

import io
import json
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

Tensor = npt.NDArray[np.float64]


def _pad_same(x: Tensor, kernel: int, stride: int, value: float) -> Tensor:
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], constant_values=value)


def _windows(x: Tensor, kernel: int, stride: int) -> Tensor:
    # (N, H', W', C, kh, kw), strided.
    view: Tensor = sliding_window_view(x, (kernel, kernel), axis=(1, 2))
    return view[:, ::stride, ::stride]


def _weights(file: h5py.File, layer: str) -> dict[str, Tensor]:
    group = file["model_weights"][layer]
    out = {}
    for name in group.attrs["weight_names"]:
        key = name.decode() if isinstance(name, bytes) else name
        out[key.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(group[key], dtype=np.float64)
    return out


def _layer(kind: str, config: dict[str, Any], inputs: list[Tensor], w: dict[str, Tensor]) -> Tensor:
    return np.asarray(_compute(kind, config, inputs, w), dtype=np.float64)


def _compute(kind: str, config: dict[str, Any], inputs: list[Tensor], w: dict[str, Tensor]) -> Any:
    x = inputs[0]
    if kind in ("Conv2D", "SeparableConv2D", "MaxPooling2D"):
        size = (config.get("kernel_size") or config["pool_size"])[0]
        stride = config["strides"][0]
        fill = -np.inf if kind == "MaxPooling2D" else 0.0
        if config["padding"] == "same":
            x = _pad_same(x, size, stride, fill)
        win = _windows(x, size, stride)
        if kind == "MaxPooling2D":
            return win.max(axis=(4, 5))
        if kind == "Conv2D":
            out: Tensor = np.einsum("nhwcij,ijco->nhwo", win, w["kernel"])
        else:
            depth = np.einsum("nhwcij,ijc->nhwc", win, w["depthwise_kernel"][..., 0])
            out = np.einsum("nhwc,co->nhwo", depth, w["pointwise_kernel"][0, 0])
        return out + w["bias"] if config["use_bias"] else out
    if kind == "BatchNormalization":
        scale = w["gamma"] / np.sqrt(w["moving_variance"] + config["epsilon"])
        return (x - w["moving_mean"]) * scale + w["beta"]
    if kind == "Activation":
        if config["activation"] == "relu":
            return np.maximum(x, 0)
        shifted = np.exp(x - x.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    if kind == "Add":
        return sum(inputs[1:], inputs[0])
    if kind == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    raise NotImplementedError(kind)


def keras_predict(hdf5: bytes, images_nchw: npt.NDArray[np.float32]) -> Tensor:
    """The model file's output (softmax probabilities) for (N, 1, H, W) inputs."""
    with h5py.File(io.BytesIO(hdf5), "r") as file:
        config = json.loads(file.attrs["model_config"])["config"]
        tensors: dict[str, Tensor] = {}
        for layer in config["layers"]:
            name, kind = layer["name"], layer["class_name"]
            if kind == "InputLayer":
                tensors[name] = np.transpose(images_nchw, (0, 2, 3, 1)).astype(np.float64)
                continue
            inputs = [tensors[node[0]] for node in layer["inbound_nodes"][0]]
            weights = _weights(file, name) if kind in (
                "Conv2D", "SeparableConv2D", "BatchNormalization"
            ) else {}  # fmt: skip
            tensors[name] = _layer(kind, layer["config"], inputs, weights)
        return tensors[config["output_layers"][0][0]]
