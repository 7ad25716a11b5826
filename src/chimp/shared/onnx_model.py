"""One ONNX Runtime session as CHIMP runs every classifier: serving and the evaluation gate.

The session options, the choice of input and output, the shape contract and the way outputs
become per-label scores are the same wherever a model answers, so a version scores the same in
the gate as it does in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from chimp.shared.errors import BadRequestError
from chimp.shared.preprocessing import softmax


class TensorShapeError(BadRequestError):
    """An input tensor does not have the shape or type the model expects."""

    code = "invalid_tensor"


@dataclass(frozen=True)
class SessionOptions:
    providers: list[str]
    intra_op_threads: int = 1


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxModel:
    """One ONNX Runtime session and the shape contract of its first input and chosen output."""

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
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        # Trust the graph over metadata: a stale input_name in the metadata must not break serving.
        chosen_in = input_name if input_name is not None and input_name in inputs else None
        chosen_in = chosen_in or next(iter(inputs))
        self.input_name: str = chosen_in
        chosen_out = output_name if output_name is not None and output_name in outputs else None
        self.output_name: str = chosen_out or next(iter(outputs))
        arg = inputs[chosen_in]
        self.input_type: str = arg.type
        raw_shape = list(arg.shape)
        self.dynamic_batch: bool = _dim(raw_shape[0]) is None if raw_shape else False
        self.fixed_batch: int | None = None if self.dynamic_batch else _dim(raw_shape[0])
        # Per-sample dims; None where the graph leaves a dimension symbolic.
        self.sample_shape: tuple[int | None, ...] = tuple(_dim(d) for d in raw_shape[1:])
        self.output_shape: list[int | None] = [_dim(d) for d in outputs[self.output_name].shape]

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def check_input(self, array: np.ndarray) -> None:
        """Raise :class:`TensorShapeError` unless ``array`` is a batch this session accepts."""
        if array.dtype != np.float32:
            raise TensorShapeError(f"input must be float32, got {array.dtype}")
        expected = ("N", *(d if d is not None else "?" for d in self.sample_shape))
        if array.ndim != len(self.sample_shape) + 1:
            raise TensorShapeError(
                f"input has shape {list(array.shape)}, expected {list(expected)}",
            )
        if array.shape[0] < 1:
            raise TensorShapeError("input batch is empty")
        if self.fixed_batch is not None and array.shape[0] != self.fixed_batch:
            raise TensorShapeError(f"this model takes batches of exactly {self.fixed_batch}")
        for got, want in zip(array.shape[1:], self.sample_shape, strict=True):
            if want is not None and got != want:
                raise TensorShapeError(
                    f"input has shape {list(array.shape)}, expected {list(expected)}",
                )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Synchronous inference; call it from a worker thread."""
        (result,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(result, dtype=np.float32)

    def warm_up(self) -> None:
        """One inference on zeros, so the first real request does not pay for lazy init."""
        sample = tuple(d if d is not None else 1 for d in self.sample_shape)
        self.run(np.zeros((self.fixed_batch or 1, *sample), dtype=np.float32))


def scores_from_outputs(outputs: np.ndarray, probabilities: bool) -> np.ndarray:
    """Per-row probabilities: the model's own, or a softmax over its logits."""
    rows = outputs.reshape(outputs.shape[0], -1).astype(np.float32)
    return rows if probabilities else softmax(rows)


def run_rows(model: OnnxModel, batch: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """Outputs for any number of rows, in chunks (one by one on graphs fixed to batch 1)."""
    step = model.fixed_batch or chunk
    parts = [model.run(batch[i : i + step]) for i in range(0, batch.shape[0], step)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
