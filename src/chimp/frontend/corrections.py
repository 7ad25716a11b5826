"""Corrections from the live page: the crop the model saw, the person's label, the provenance.

The live socket remembers its last few frames with the prediction serving gave for each. A
correction names a frame and a face; the crop is cut here from that very frame (same box,
same margin, same colour conversion and size as serving's preprocessing), so what the
training service stores is what the model saw, and the provenance (model, version, predicted
label, confidence) comes from serving's answer, not from the browser. A socket only ever
knows its own user's frames, so nobody can correct someone else's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import cv2
import httpx

from chimp.frontend.clients import Backend, BackendError, error_body, upstream_path
from chimp.shared.errors import ChimpError, InvalidInputError
from chimp.shared.preprocessing import resize_to, to_color
from chimp.shared.schemas.models import Box, ImagePrediction, InputSpec, ModelVersionInfo
from chimp.shared.vision import crop, decode_image

RECENT_FRAMES = 16
SPEC_CACHE = 64


@dataclass(frozen=True)
class SeenFrame:
    jpeg: bytes
    prediction: ImagePrediction


class RecentFrames:
    """The socket's last frames and their predictions, by the id sent to the page."""

    def __init__(self, keep: int = RECENT_FRAMES) -> None:
        self._keep = keep
        self._frames: OrderedDict[int, SeenFrame] = OrderedDict()
        self._next = 1

    def add(self, jpeg: bytes, prediction: ImagePrediction) -> int:
        frame_id = self._next
        self._next += 1
        self._frames[frame_id] = SeenFrame(jpeg, prediction)
        while len(self._frames) > self._keep:
            self._frames.popitem(last=False)
        return frame_id

    def get(self, frame_id: int) -> SeenFrame | None:
        return self._frames.get(frame_id)


class InputSpecs:
    """Each version's input spec, read once from the training API (versions never change)."""

    def __init__(self, training: Backend) -> None:
        self._training = training
        self._specs: OrderedDict[tuple[str, str], InputSpec] = OrderedDict()

    async def get(self, name: str, version: str) -> InputSpec:
        key = (name, version)
        if key not in self._specs:
            raw = await self._training.json(
                "GET", upstream_path("models", name, "versions", version)
            )
            info = ModelVersionInfo.model_validate(raw)
            if info.metadata is None:
                raise InvalidInputError(f"{name} version {version} has no input description")
            self._specs[key] = info.metadata.input
            while len(self._specs) > SPEC_CACHE:
                self._specs.popitem(last=False)
        return self._specs[key]


def model_crop(jpeg: bytes, box: Box | None, spec: InputSpec, margin: float) -> bytes:
    """The face as the model saw it: cut, colour-converted and resized per its input spec."""
    image = decode_image(jpeg)
    region = crop(image, box, margin) if box is not None else image
    region = to_color(region, spec)
    if spec.color == "rgb":  # to_color gives RGB; PNG files are written from BGR
        region = cv2.cvtColor(region, cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", resize_to(region, spec))  # as serving resizes it
    if not ok:  # pragma: no cover - OpenCV encodes any image it made
        raise InvalidInputError("the face crop could not be encoded")
    return bytes(png.tobytes())


def _face(frame: SeenFrame, face: int) -> tuple[Box | None, str, float]:
    faces = frame.prediction.faces
    if not 0 <= face < len(faces):
        raise InvalidInputError(f"frame has no face number {face}")
    found = faces[face]
    return found.box, found.label, found.score


def reply(kind: str, request_id: Any, ok: bool, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "request": request_id, "ok": ok, **fields}


async def _post_crop(
    training: Backend,
    path: str,
    frame: SeenFrame,
    face: int,
    specs: InputSpecs,
    margin: float,
    extra: dict[str, str],
) -> httpx.Response:
    box, predicted, confidence = _face(frame, face)
    model = frame.prediction.model
    spec = await specs.get(model.name, model.version)
    png = await anyio.to_thread.run_sync(model_crop, frame.jpeg, box, spec, margin)
    form = {
        "model": model.name,
        "version": model.version,
        "predicted": predicted,
        "confidence": f"{min(1.0, max(0.0, confidence)):.6f}",
        **extra,
    }
    return await training.request(
        "POST", path, data=form, files={"file": ("face.png", png, "image/png")}
    )


async def send_correction(
    training: Backend,
    frames: RecentFrames,
    specs: InputSpecs,
    *,
    user_id: str,
    message: dict[str, Any],
    margin: float,
) -> dict[str, Any]:
    """Handle ``{"type": "correct", "frame", "face", "label"}`` from the live page."""
    request_id = message.get("request")
    frame_id, face, label = message.get("frame"), message.get("face", 0), message.get("label")
    if not isinstance(frame_id, int) or not isinstance(face, int) or not isinstance(label, str):
        return reply("correction", request_id, False, error="send frame, face and label")
    frame = frames.get(frame_id)
    if frame is None:
        return reply(
            "correction", request_id, False, error="that frame is gone: correct a newer one"
        )
    try:
        response = await _post_crop(
            training,
            upstream_path("users", user_id, "feedback"),
            frame,
            face,
            specs,
            margin,
            {"label": label},
        )
    except (ChimpError, BackendError) as exc:
        return reply("correction", request_id, False, error=exc.message)
    if response.status_code >= 400:
        return reply(
            "correction", request_id, False, error=error_body("training", response)[1].error
        )
    return reply("correction", request_id, True, receipt=response.json())


@dataclass
class ReviewOffers:
    """Offers uncertain frames to the user's review queue, when the page says it is on.

    Training enforces the opt-in and the hourly cap; this only keeps a live socket from
    offering more than one frame every ``min_gap_s``.
    """

    below: float
    min_gap_s: float
    enabled: bool = False
    _last: float = 0.0

    def wants(self, prediction: ImagePrediction) -> int | None:
        """The index of an uncertain face worth offering now, or None."""
        if not self.enabled or time.monotonic() - self._last < self.min_gap_s:
            return None
        for index, face in enumerate(prediction.faces):
            if face.score < self.below:
                return index
        return None

    async def offer(
        self,
        training: Backend,
        frame: SeenFrame,
        face: int,
        specs: InputSpecs,
        *,
        user_id: str,
        margin: float,
    ) -> dict[str, Any] | None:
        self._last = time.monotonic()
        try:
            response = await _post_crop(
                training,
                upstream_path("users", user_id, "review"),
                frame,
                face,
                specs,
                margin,
                {},
            )
        except (ChimpError, BackendError):
            return None
        if response.status_code >= 400:
            return None
        body: dict[str, Any] = response.json()
        return {"type": "review", **body} if body.get("kept") else None
