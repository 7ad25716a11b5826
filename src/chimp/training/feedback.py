"""Corrections: a person says what a face really shows, and it becomes training data.

Each user's corrections live in one dataset, ``feedback-<user>``, in the layout the emotion
plugin reads::

    train/<label>/<id>.png      the face crop as the model saw it
    provenance/<id>.json        Correction: model, version, predicted label, confidence, time

so ``feedback-<user>`` can be trained on as it is, and the loop merges it with the user's
calibration datasets (``calib-<user>-...``).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import anyio
import anyio.to_thread
import cv2
import numpy as np

from chimp.shared.datastore import Datastore
from chimp.shared.errors import (
    ChimpError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationFailedError,
)
from chimp.shared.registry import AsyncModelRegistry, user_alias
from chimp.shared.schemas.datasets import dataset_owner
from chimp.shared.schemas.users import Correction
from chimp.shared.vision import decode_image

FEEDBACK_PREFIX = "feedback-"
PROVENANCE_DIR = "provenance"
# Dataset names are at most 64 characters: "feedback-" leaves 55 for the id.
MAX_USER_ID = 48


def check_user_id(user_id: str) -> str:
    """The id as the alias rule and the dataset names built from it accept it."""
    user_alias(user_id)
    if user_id != user_id.strip() or len(user_id) > MAX_USER_ID:
        raise ValidationFailedError(
            f"invalid user id {user_id!r}: use 1-{MAX_USER_ID} letters, digits, '-' or '_'",
            detail=[{"loc": ["path", "user_id"], "msg": "invalid user id"}],
        )
    return user_id


def feedback_dataset(user_id: str) -> str:
    return f"{FEEDBACK_PREFIX}{user_id}"


def new_correction_id(now: datetime) -> str:
    """Sortable by time, unique without coordination."""
    return f"{now:%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"


def crop_to_png(data: bytes) -> bytes:
    """The crop as PNG, gray kept gray; refuses anything that is not a whole JPEG or PNG."""
    decode_image(data)  # the checks (complete file, sane size), with a clear message
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    ok, encoded = cv2.imencode(".png", image) if image is not None else (False, None)
    if not ok or encoded is None:  # pragma: no cover - OpenCV encodes any image it decoded
        raise InvalidInputError("the face crop could not be stored as PNG")
    return bytes(encoded.tobytes())


async def labels_of(registry: AsyncModelRegistry, model: str, version: str) -> list[str]:
    """The labels of the version that answered; a correction must use one of them."""
    info = await registry.get_version(model, version)
    if info.metadata is None:
        raise InvalidInputError(
            f"model {model!r} version {version} carries no CHIMP metadata: its labels are unknown"
        )
    return list(info.metadata.labels)


async def store_correction(
    datastore: Datastore,
    registry: AsyncModelRegistry,
    *,
    user_id: str,
    image: bytes,
    label: str,
    model: str,
    version: str,
    predicted: str,
    confidence: float,
    max_image_bytes: int,
    source: str = "live",
) -> Correction:
    """Check a correction and add it to the user's feedback dataset; returns what was stored.

    Nothing is written unless every check passed: the image decodes, the labels are the
    answering version's, the version exists.
    """
    check_user_id(user_id)
    if len(image) > max_image_bytes:
        raise PayloadTooLargeError(
            f"the face crop is larger than {max_image_bytes} bytes",
            detail={"field": "file", "limit": max_image_bytes},
        )
    try:
        png = await anyio.to_thread.run_sync(crop_to_png, image)
    except InvalidInputError as exc:
        raise InvalidInputError(f"file: {exc.message}", detail={"field": "file"}) from exc
    try:
        labels = await labels_of(registry, model, version)
    except NotFoundError as exc:
        raise NotFoundError(
            f"{exc.message}: a correction names the version that answered",
            detail={"fields": ["model", "version"]},
        ) from exc
    problems = [
        {"loc": ["body", field], "msg": f"unknown label {value!r}; expected one of {labels}"}
        for field, value in (("label", label), ("predicted", predicted))
        if value not in labels
    ]
    bad = [
        f"{field} {value!r}"
        for field, value in (("label", label), ("predicted", predicted))
        if value not in labels
    ]
    if problems:
        raise ValidationFailedError(
            f"unknown {' and '.join(bad)}: {model} version {version} knows {', '.join(labels)}",
            detail=problems,
        )
    now = datetime.now(UTC)
    correction_id = new_correction_id(now)
    correction = Correction(
        id=correction_id,
        user_id=user_id,
        label=label,
        model=model,
        version=version,
        predicted=predicted,
        confidence=confidence,
        at=now,
        image=f"train/{label}/{correction_id}.png",
        source="review" if source == "review" else "live",
    )
    await datastore.put_files(
        feedback_dataset(user_id),
        {
            correction.image: png,
            f"{PROVENANCE_DIR}/{correction_id}.json": correction.model_dump_json().encode(),
        },
    )
    return correction


async def count_corrections(datastore: Datastore, user_id: str) -> int:
    """How many corrections the user has given (0 when none)."""
    try:
        manifest = await datastore.get_manifest(feedback_dataset(user_id))
    except NotFoundError:
        return 0
    return sum(
        1
        for entry in manifest.entries
        if entry.path.startswith(f"{PROVENANCE_DIR}/") and entry.path.endswith(".json")
    )


def is_calibration_of(name: str, user_id: str) -> bool:
    """``calib-<user>-<digits>``: the datasets' one ownership rule (shared with the API)."""
    return dataset_owner(name) == user_id


def owner_of(name: str) -> str | None:
    """The user a feedback dataset belongs to (calibration names are ambiguous: ids hold '-')."""
    if name.startswith(FEEDBACK_PREFIX):
        user = name[len(FEEDBACK_PREFIX) :]
        try:
            return check_user_id(user)
        except ChimpError:
            return None
    return None
