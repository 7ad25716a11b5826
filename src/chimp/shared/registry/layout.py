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
from typing import Any

from mlflow.models import Model
from pydantic import BaseModel

from chimp.shared.errors import InvalidInputError
from chimp.shared.model_fit import check_fits, read_graph
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

    The rule is :func:`chimp.shared.model_fit.check_fits`, the one serving applies at load.
    """
    check_fits(read_graph(onnx_path), metadata)


def find_onnx(local: Path, what: str) -> Path:
    """The ONNX file of a downloaded MLflow model (a file, or a folder with an ``MLmodel``).

    The ``onnx`` flavour's ``data`` entry names it; failing that, the folder's one ``.onnx``.
    """
    if local.is_file():
        if local.suffix == ".onnx":
            return local
        raise InvalidInputError(f"{what} is {local.name}, not an ONNX model")
    mlmodel = local / "MLmodel"
    if mlmodel.is_file():
        flavors: dict[str, Any] = Model.load(str(mlmodel)).flavors or {}
        data = (flavors.get("onnx") or {}).get("data")
        if isinstance(data, str) and (local / data).is_file():
            return local / data
        if "onnx" not in flavors:
            raise InvalidInputError(
                f"{what} is not an ONNX model (MLflow flavours: {', '.join(sorted(flavors))}); "
                "CHIMP serves ONNX models"
            )
    found = sorted(local.rglob("*.onnx"))
    if len(found) != 1:
        raise InvalidInputError(
            f"{what} has {len(found)} .onnx files and no MLmodel saying which one is the model"
        )
    return found[0]
