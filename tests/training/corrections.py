"""Helpers of the tests that post corrections to the training API."""

from __future__ import annotations

import cv2
import httpx
import numpy as np

TOKEN = "users-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def crop_png(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    ok, data = cv2.imencode(".png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    assert ok
    return bytes(data.tobytes())


def correction_form(answered: str, model: str, **overrides: str) -> dict[str, str]:
    form = {
        "label": "neutral",
        "model": model,
        "version": answered,
        "predicted": "sad",
        "confidence": "0.62",
    }
    form.update(overrides)
    return form


async def correct(
    client: httpx.AsyncClient, user: str, form: dict[str, str], image: bytes | None = None
) -> httpx.Response:
    files = {"file": ("face.png", image if image is not None else crop_png(), "image/png")}
    return await client.post(f"/users/{user}/feedback", data=form, files=files, headers=AUTH)
