"""What CHIMP writes into MLflow for a model version, and the check that an ONNX file fits it.

Per training run::

    <run>/model/model.onnx          the model version's source is ``runs:/<run>/model``
    <run>/model/chimp-model.json    ModelMetadata, for anyone reading the files
    <run>/<extra files>             confusion matrix, curves, ...

and on the model version, tags ``chimp.metadata`` (the same JSON), ``chimp.task``,
``chimp.dataset``, ``chimp.plugin`` so serving reads metadata without downloading anything.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from pydantic import BaseModel

from chimp.shared.errors import BadRequestError, InvalidInputError
from chimp.shared.schemas.models import ModelMetadata

ONNX_FILE = "model.onnx"
METADATA_FILE = "chimp-model.json"
MODEL_DIR = "model"

TAG_METADATA = "chimp.metadata"
TAG_TASK = "chimp.task"
TAG_DATASET = "chimp.dataset"
TAG_PLUGIN = "chimp.plugin"
TAG_BASE_VERSION = "chimp.base_version"  # the production version a personal model started from
TAG_USER = "chimp.user_id"  # a personal (calibration) version: whose
TAG_DECISION = "chimp.decision"  # the evaluation gate's Decision, as JSON


class ArtifactFile(BaseModel):
    """A file stored with a model version's run; ``path`` is relative to the run's root."""

    path: str
    size: int | None = None


def metadata_tags(metadata: ModelMetadata) -> dict[str, str]:
    """The version (and run) tags that carry ``metadata``."""
    tags = {TAG_METADATA: metadata.model_dump_json(), TAG_TASK: metadata.task}
    if metadata.dataset:
        tags[TAG_DATASET] = metadata.dataset
    if metadata.plugin:
        tags[TAG_PLUGIN] = metadata.plugin
    return tags


def check_onnx_matches(onnx_path: Path, metadata: ModelMetadata) -> None:
    """Refuse an ONNX file that serving could not use with ``metadata``.

    Its graph must have the input and output named by the input spec, and a fixed last output
    dimension, when present, must equal the number of labels.
    """
    if not onnx_path.is_file():
        raise BadRequestError(f"ONNX file not found: {onnx_path}")
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt file
        raise InvalidInputError(f"{onnx_path.name} is not a readable ONNX model: {exc}") from exc
    spec = metadata.input
    inputs = {i.name for i in graph.input}
    outputs = {o.name: o for o in graph.output}
    if spec.input_name not in inputs:
        raise InvalidInputError(
            f"ONNX model has no input {spec.input_name!r} (inputs: {sorted(inputs)})"
        )
    if spec.output_name not in outputs:
        raise InvalidInputError(
            f"ONNX model has no output {spec.output_name!r} (outputs: {sorted(outputs)})"
        )
    dims = outputs[spec.output_name].type.tensor_type.shape.dim
    width = dims[-1].dim_value if dims else 0
    if width and width != len(metadata.labels):
        raise InvalidInputError(
            f"ONNX output {spec.output_name!r} has {width} values but metadata lists "
            f"{len(metadata.labels)} labels"
        )
