"""One ONNX Runtime session as CHIMP runs every classifier: serving and the evaluation gate.

The session options, the choice of input and output, the shape contract and the way outputs
become per-label scores are the same wherever a model answers, so a version scores the same in
the gate as it does in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from chimp.shared.errors import BadRequestError
from chimp.shared.model_fit import Graph, GraphTensor, dim
from chimp.shared.preprocessing import softmax


class TensorShapeError(BadRequestError):
    """An input tensor does not have the shape or type the model expects."""

    code = "invalid_tensor"


@dataclass(frozen=True)
class SessionOptions:
    providers: list[str]
    intra_op_threads: int = 1


# ONNX element types as numpy dtypes (strings are numpy object arrays of str).
NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(string)": np.dtype(object),
}


def _graph_tensor(arg: Any) -> GraphTensor:
    return GraphTensor(arg.name, arg.type, tuple(dim(d) for d in arg.shape))


def check_tensor(spec: GraphTensor, array: np.ndarray, *, label: str = "input") -> None:
    """Raise :class:`TensorShapeError` unless ``array`` has the dtype and shape ``spec`` takes."""
    want = NUMPY_TYPES.get(spec.onnx_type)
    if want is None:
        raise TensorShapeError(f"{label} is {spec.onnx_type}, which CHIMP cannot feed")
    if array.dtype != want:
        raise TensorShapeError(f"{label} must be {want}, got {array.dtype}")
    expected = ["N", *(d if d is not None else "?" for d in spec.shape[1:])][: len(spec.shape)]
    if array.ndim != len(spec.shape):
        raise TensorShapeError(f"{label} has shape {list(array.shape)}, expected {expected}")
    if array.ndim and array.shape[0] < 1:
        raise TensorShapeError(f"{label} batch is empty")
    for got, fixed in zip(array.shape, spec.shape, strict=True):
        if fixed is not None and got != fixed:
            raise TensorShapeError(f"{label} has shape {list(array.shape)}, expected {expected}")


class OnnxModel:
    """One ONNX Runtime session, its graph, and the shape contract of its primary tensors.

    The primary input and output are the ones CHIMP metadata names (else the graph's first):
    they take the micro-batched path; any other combination runs as one plain session call.
    """

    def __init__(
        self,
        path: Path,
        options: SessionOptions,
        *,
        input_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads
        # Concurrency comes from several sessions.run calls in parallel threads, not from
        # parallel branches inside one small graph.
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), sess_options=so, providers=options.providers)
        self.graph = Graph(
            inputs=tuple(_graph_tensor(i) for i in self.session.get_inputs()),
            outputs=tuple(_graph_tensor(o) for o in self.session.get_outputs()),
        )
        inputs = {t.name: t for t in self.graph.inputs}
        outputs = {t.name: t for t in self.graph.outputs}
        chosen_in = input_name if input_name is not None and input_name in inputs else None
        self.input_name: str = chosen_in or self.graph.inputs[0].name
        chosen_out = output_name if output_name is not None and output_name in outputs else None
        self.output_name: str = chosen_out or self.graph.outputs[0].name
        self.input: GraphTensor = inputs[self.input_name]
        self.dynamic_batch: bool = self.input.shape[0] is None if self.input.shape else False
        self.fixed_batch: int | None = None if self.dynamic_batch else self.input.shape[0]
        # Per-sample dims; None where the graph leaves a dimension symbolic.
        self.sample_shape: tuple[int | None, ...] = self.input.shape[1:]
        # One input, one output: every request can take the micro-batched path.
        self.single: bool = len(self.graph.inputs) == 1 and len(self.graph.outputs) == 1

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def check_input(self, array: np.ndarray) -> None:
        """Raise :class:`TensorShapeError` unless ``array`` is a batch this session accepts."""
        fixed = self.fixed_batch
        if fixed is not None and array.ndim == len(self.input.shape) and array.shape[0] != fixed:
            raise TensorShapeError(f"this model takes batches of exactly {self.fixed_batch}")
        check_tensor(self.input, array)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Synchronous inference of the primary output; call it from a worker thread."""
        (result,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(result)

    def run_many(self, feeds: dict[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        """Synchronous inference of any outputs from any inputs; call it from a worker thread."""
        return [np.asarray(r) for r in self.session.run(list(names), feeds)]

    def warm_up(self) -> None:
        """One inference on zeros, so the first real request does not pay for lazy init."""
        feeds = {}
        for spec in self.graph.inputs:
            dtype = NUMPY_TYPES.get(spec.onnx_type)
            if dtype is None:
                return  # a type we cannot make a sample of: the first request warms it up
            shape = tuple(d if d is not None else 1 for d in spec.shape)
            feeds[spec.name] = (
                np.full(shape, "", dtype=object) if dtype.kind == "O" else np.zeros(shape, dtype)
            )
        self.session.run(None, feeds)


def scores_from_outputs(outputs: np.ndarray, probabilities: bool) -> np.ndarray:
    """Per-row probabilities: the model's own, or a softmax over its logits."""
    rows = outputs.reshape(outputs.shape[0], -1).astype(np.float32)
    return rows if probabilities else softmax(rows)


def run_rows(model: OnnxModel, batch: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """Outputs for any number of rows, in chunks (one by one on graphs fixed to batch 1)."""
    step = model.fixed_batch or chunk
    parts = [model.run(batch[i : i + step]) for i in range(0, batch.shape[0], step)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
