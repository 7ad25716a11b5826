"""``/ws/live``: the live page sends JPEG frames, one at a time, and gets predictions back.

Text messages carry the page's other requests: ``{"type": "correct", ...}`` (a correction of a
recent frame, see :mod:`chimp.frontend.corrections`) and ``{"type": "review", "enabled"}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from chimp.frontend.corrections import InputSpecs, RecentFrames, ReviewOffers, send_correction
from chimp.frontend.dependencies import backends_of, input_specs_of, settings_of, user_id_of
from chimp.frontend.live import predict_frame, status
from chimp.shared.schemas.models import ImagePrediction

router = APIRouter()


@router.websocket("/ws/live")
async def live_socket(websocket: WebSocket) -> None:
    settings = settings_of(websocket)
    cfg = settings.frontend
    serving = backends_of(websocket).serving
    user_id = user_id_of(websocket)
    assert user_id is not None
    await websocket.accept()
    min_interval = 1.0 / cfg.max_fps
    next_allowed = 0.0
    frames = RecentFrames()
    specs = input_specs_of(websocket)
    offers = ReviewOffers(below=cfg.review_below, min_gap_s=cfg.review_min_gap_s)
    try:
        await websocket.send_json(
            {
                "type": "hello",
                "user_id": user_id,
                "max_fps": cfg.max_fps,
                "model_name": settings.model_name,
            }
        )
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            if frame is None:
                await websocket.send_json(
                    await _page_request(message.get("text"), frames, specs, offers, websocket)
                )
                continue
            if len(frame) > cfg.max_frame_bytes:
                await websocket.send_json(
                    status("bad_frame", f"frame larger than {cfg.max_frame_bytes} bytes")
                )
                continue
            # The page paces itself; this only holds back a client that ignores the cap.
            wait = next_allowed - time.monotonic()
            if wait > 0:
                await anyio.sleep(wait)
            next_allowed = time.monotonic() + min_interval
            answer = await predict_frame(serving, settings.model_name, user_id, frame)
            if not isinstance(answer, ImagePrediction):
                await websocket.send_json(answer)
                continue
            prediction = answer
            frame_id = frames.add(frame, prediction)
            await websocket.send_json(
                {"type": "prediction", **prediction.model_dump(mode="json"), "frame": frame_id}
            )
            uncertain = offers.wants(prediction)
            if uncertain is not None:
                seen = frames.get(frame_id)
                assert seen is not None
                kept = await offers.offer(
                    backends_of(websocket).training,
                    seen,
                    uncertain,
                    specs,
                    user_id=user_id,
                    margin=cfg.correction_crop_margin,
                )
                if kept is not None:
                    await websocket.send_json(kept)
    except WebSocketDisconnect:
        return


async def _page_request(
    text: str | None,
    frames: RecentFrames,
    specs: InputSpecs,
    offers: ReviewOffers,
    websocket: WebSocket,
) -> dict[str, Any]:
    try:
        message = json.loads(text or "")
    except ValueError:
        message = None
    if not isinstance(message, dict):
        return status("bad_frame", "send frames as binary JPEG")
    if message.get("type") == "correct":
        user_id = user_id_of(websocket)
        assert user_id is not None
        return await send_correction(
            backends_of(websocket).training,
            frames,
            specs,
            user_id=user_id,
            message=message,
            margin=settings_of(websocket).frontend.correction_crop_margin,
        )
    if message.get("type") == "review":
        offers.enabled = bool(message.get("enabled"))
        return {"type": "review-mode", "enabled": offers.enabled}
    return status("bad_frame", f"unknown request type {message.get('type')!r}")
