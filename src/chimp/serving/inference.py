"""ONNX Runtime sessions and how requests reach them without blocking the event loop.

:class:`OnnxModel` is the synchronous session plus what we learned about its input.
:class:`ModelRunner` is the async front: every call runs in a worker thread behind the app's
inference :class:`anyio.CapacityLimiter`, and, when batching is on and the model has a dynamic
batch dimension, requests that arrive while all inference slots are busy are merged into one
``session.run`` call (opportunistic micro-batching: nobody waits for a batch to fill).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import onnxruntime as ort

from chimp.serving.config import BatchingConfig, ProviderChoice
from chimp.shared.errors import BadRequestError
from chimp.shared.model_fit import Graph, GraphTensor, dim

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


class TensorShapeError(BadRequestError):
    """An input tensor does not have the shape or type the model expects."""

    code = "invalid_tensor"


def select_providers(choice: ProviderChoice, available: Sequence[str] | None = None) -> list[str]:
    """Execution providers for ``choice``; CPU is always the last fallback.

    ``cuda`` insists on CUDA (a deployment that asked for a GPU should fail loudly without one);
    ``auto`` takes CUDA only when the installed onnxruntime build offers it.
    """
    offered = list(available if available is not None else ort.get_available_providers())
    if choice == "cpu":
        return [CPU]
    if CUDA in offered:
        return [CUDA, CPU]
    if choice == "cuda":
        raise RuntimeError(
            "CHIMP_SERVING__PROVIDERS=cuda but onnxruntime offers only "
            f"{offered}; install the 'gpu' extra (onnxruntime-gpu) on a machine with a GPU"
        )
    return [CPU]


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
        self.input_type: str = self.input.onnx_type
        self.dynamic_batch: bool = self.input.shape[0] is None if self.input.shape else False
        self.fixed_batch: int | None = None if self.dynamic_batch else self.input.shape[0]
        # Per-sample dims; None where the graph leaves a dimension symbolic.
        self.sample_shape: tuple[int | None, ...] = self.input.shape[1:]
        self.output_shape: list[int | None] = list(outputs[self.output_name].shape)
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


@dataclass
class _Pending:
    batch: np.ndarray
    future: asyncio.Future[np.ndarray]


class ModelRunner:
    """Async inference on one :class:`OnnxModel`, optionally merging concurrent requests."""

    def __init__(
        self, model: OnnxModel, limiter: anyio.CapacityLimiter, batching: BatchingConfig
    ) -> None:
        self.model = model
        self._limiter = limiter
        self._batching = batching.enabled and model.dynamic_batch and batching.max_batch_size > 1
        self._max_rows = batching.max_batch_size
        self._pending: list[_Pending] = []
        self._drainers = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def batching(self) -> bool:
        return self._batching

    async def infer(self, batch: np.ndarray) -> np.ndarray:
        """Outputs for ``batch`` (already checked with :meth:`OnnxModel.check_input`)."""
        if not self._batching:
            return await anyio.to_thread.run_sync(self.model.run, batch, limiter=self._limiter)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(batch, future))
        # One drainer per inference slot: with every slot busy, new requests queue up and the
        # next free drainer takes them all in one call.
        if self._drainers < int(self._limiter.total_tokens):
            self._drainers += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def infer_many(
        self, feeds: dict[str, np.ndarray], names: Sequence[str]
    ) -> list[np.ndarray]:
        """Any outputs from any inputs (already checked), as one session call, unbatched."""
        return await anyio.to_thread.run_sync(
            self.model.run_many, feeds, names, limiter=self._limiter
        )

    async def infer_rows(self, batch: np.ndarray) -> np.ndarray:
        """Like :meth:`infer` for any number of rows, also on graphs fixed to batch size 1."""
        if self.model.fixed_batch == 1 and batch.shape[0] > 1:
            parts = [await self.infer(batch[i : i + 1]) for i in range(batch.shape[0])]
            return np.concatenate(parts)
        return await self.infer(batch)

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        rows = 0
        while self._pending:
            nxt = self._pending[0]
            if taken and rows + nxt.batch.shape[0] > self._max_rows:
                break
            taken.append(self._pending.pop(0))
            rows += nxt.batch.shape[0]
        return [p for p in taken if not p.future.done()]  # drop requests already cancelled

    async def _drain(self) -> None:
        try:
            while self._pending:
                items = self._take()
                if not items:
                    continue
                merged = (
                    items[0].batch if len(items) == 1 else np.concatenate([p.batch for p in items])
                )
                try:
                    out = await anyio.to_thread.run_sync(
                        self.model.run, merged, limiter=self._limiter
                    )
                except Exception as exc:  # handed to each waiting request, which reports it
                    for p in items:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                start = 0
                for p in items:
                    stop = start + p.batch.shape[0]
                    if not p.future.done():
                        p.future.set_result(out[start:stop])
                    start = stop
        finally:
            self._drainers -= 1
