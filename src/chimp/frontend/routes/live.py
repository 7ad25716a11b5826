"""``/ws/live``: the live page sends JPEG frames, one at a time, and gets predictions back."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from chimp.frontend.dependencies import backends_of, settings_of, user_id_of
from chimp.frontend.live import predict_frame, status

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
                await websocket.send_json(status("bad_frame", "send frames as binary JPEG"))
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
            reply = await predict_frame(serving, settings.model_name, user_id, frame)
            await websocket.send_json(reply)
    except WebSocketDisconnect:
        return
