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

import anyio
import anyio.to_thread
import numpy as np
import onnxruntime as ort

from chimp.serving.config import BatchingConfig, ProviderChoice
from chimp.shared.onnx_model import OnnxModel, SessionOptions, TensorShapeError

__all__ = ["ModelRunner", "OnnxModel", "SessionOptions", "TensorShapeError", "select_providers"]

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


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
