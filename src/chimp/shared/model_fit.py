"""The one rule for "does this ONNX graph fit this model metadata", and reading a graph's tensors.

Registration (training) reads the graph from the file with ``onnx``; serving reads it from its
ONNX Runtime session. Both describe it as :class:`GraphTensor` lists and call
:func:`check_fits`, so a version that registers is a version serving accepts, and a refusal
reads the same from either side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from chimp.shared.errors import BadRequestError, InvalidInputError
from chimp.shared.schemas.models import ModelMetadata

FLOAT = "tensor(float)"


class ModelMismatchError(InvalidInputError):
    """The ONNX graph does not fit the metadata it is registered (or served) with."""

    code = "model_mismatch"


@dataclass(frozen=True)
class GraphTensor:
    """One graph input or output: its name, ONNX type (``tensor(float)``) and shape.

    ``shape`` holds None where the graph leaves a dimension symbolic (the batch, usually).
    """

    name: str
    onnx_type: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class Graph:
    inputs: tuple[GraphTensor, ...]
    outputs: tuple[GraphTensor, ...]


def dim(value: object) -> int | None:
    """A fixed dimension, or None for a symbolic/unknown one (ONNX Runtime and onnx alike)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _tensor(value: onnx.ValueInfoProto) -> GraphTensor:
    kind = value.type.tensor_type
    elem = onnx.helper.tensor_dtype_to_string(kind.elem_type)  # e.g. "TensorProto.FLOAT"
    onnx_type = f"tensor({elem.rsplit('.', 1)[-1].lower()})"
    return GraphTensor(
        value.name,
        onnx_type,
        tuple(dim(d.dim_value) if d.HasField("dim_value") else None for d in kind.shape.dim),
    )


def read_graph(onnx_path: Path) -> Graph:
    """The inputs and outputs of the ONNX file at ``onnx_path`` (weights are not loaded)."""
    if not onnx_path.is_file():
        raise BadRequestError(f"ONNX file not found: {onnx_path}")
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt file
        raise InvalidInputError(f"{onnx_path.name} is not a readable ONNX model: {exc}") from exc
    weights = {init.name for init in graph.initializer}
    return Graph(
        inputs=tuple(_tensor(i) for i in graph.input if i.name not in weights),
        outputs=tuple(_tensor(o) for o in graph.output),
    )


def _shape(dims: Sequence[int | None]) -> str:
    return "[" + ", ".join("N" if i == 0 else str(d or "?") for i, d in enumerate(dims)) + "]"


def check_fits(graph: Graph, metadata: ModelMetadata) -> None:
    """Raise :class:`ModelMismatchError` unless ``metadata`` describes ``graph``.

    The input named by the input spec must exist, be float32 and NCHW with the spec's channels,
    height and width wherever the graph fixes them; the output it names must exist, and its last
    dimension, when fixed, must equal the number of labels.
    """
    spec = metadata.input
    inputs = {t.name: t for t in graph.inputs}
    outputs = {t.name: t for t in graph.outputs}
    if spec.input_name not in inputs:
        raise ModelMismatchError(
            f"ONNX model has no input {spec.input_name!r} (inputs: {sorted(inputs)}); "
            "set input.input_name in the metadata"
        )
    if spec.output_name not in outputs:
        raise ModelMismatchError(
            f"ONNX model has no output {spec.output_name!r} (outputs: {sorted(outputs)}); "
            "set input.output_name in the metadata"
        )
    tensor = inputs[spec.input_name]
    if tensor.onnx_type != FLOAT:
        raise ModelMismatchError(
            f"ONNX input {tensor.name!r} is {tensor.onnx_type}; CHIMP metadata describes images "
            f"as {FLOAT}"
        )
    expected = (None, spec.channels, spec.height, spec.width)
    fits = len(tensor.shape) == len(expected) and all(
        got is None or want is None or got == want
        for got, want in zip(tensor.shape, expected, strict=True)
    )
    if not fits:
        raise ModelMismatchError(
            f"ONNX input {tensor.name!r} has shape {_shape(tensor.shape)} but the metadata's "
            f"input spec says {_shape(expected)} (NCHW: channels, height, width)"
        )
    out = outputs[spec.output_name]
    width = out.shape[-1] if out.shape else None
    if width is not None and width != len(metadata.labels):
        raise ModelMismatchError(
            f"ONNX output {out.name!r} has {width} values per sample but the metadata lists "
            f"{len(metadata.labels)} labels"
        )


def complete_metadata(raw: object, graph: Graph) -> ModelMetadata:
    """``ModelMetadata`` from a JSON object, naming the graph's first input and output where
    the object leaves ``input.input_name`` / ``input.output_name`` out (an imported model's
    tensors are rarely called ``input`` and ``logits``). Raises pydantic's ValidationError."""
    if isinstance(raw, dict) and isinstance(raw.get("input"), dict):
        spec = dict(raw["input"])
        if graph.inputs:
            spec.setdefault("input_name", graph.inputs[0].name)
        if graph.outputs:
            spec.setdefault("output_name", graph.outputs[0].name)
        raw = {**raw, "input": spec}
    return ModelMetadata.model_validate(raw)
