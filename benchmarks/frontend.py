"""Live page round trip: browser frame sent -> predictions drawn, and sustained frames/s.

Runs Debian Chromium (Playwright) with a fake webcam made from a real face photo, opens the live
page in 1 and 4 concurrent browser sessions (separate profiles, so separate users) and reads the
page's own measurements (``window.chimpLive``, taken with performance.now()).

    # against a running stack (chimp up), a model in production:
    .venv/bin/python benchmarks/frontend.py --frontend-url http://127.0.0.1:5252
    # self-contained: the web app plus a stub serving that runs the real face detector
    .venv/bin/python benchmarks/frontend.py

The page caps its own rate at the web app's CHIMP_FRONTEND__MAX_FPS (the self-contained run uses
--max-fps, default 30, to find the ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.ports import free_port, wait_for_port  # noqa: E402
from tests.frontend.browser import CHROMIUM, chromium_args  # noqa: E402
from tests.frontend.webcam import face_frame, write_y4m  # noqa: E402

from chimp.frontend.app import create_app  # noqa: E402
from chimp.frontend.config import FrontendConfig, FrontendSettings  # noqa: E402
from chimp.shared.vision import FaceDetector, decode_image  # noqa: E402

EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def stub_serving() -> FastAPI:
    """Serving's predict-image contract with the real decode + Haar detection, fixed scores."""
    app = FastAPI()
    local = threading.local()
    limiter = anyio.CapacityLimiter(2)

    def detect(data: bytes) -> dict[str, Any]:
        if not hasattr(local, "detector"):
            local.detector = FaceDetector()
        image = decode_image(data)
        boxes = local.detector.detect(image)
        scores = {e: 1 / 7 for e in EMOTIONS}
        return {
            "model": {"name": "stub", "version": "1", "alias": "production"},
            "mode": "faces",
            "width": image.shape[1],
            "height": image.shape[0],
            "faces": [
                {"box": b.model_dump(), "scores": scores, "label": "happy", "score": 1 / 7}
                for b in boxes
            ],
        }

    @app.post("/models/{name}/predict-image")
    async def predict(name: str, request: Request) -> JSONResponse:
        data = await request.body()
        return JSONResponse(await anyio.to_thread.run_sync(detect, data, limiter=limiter))

    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(
    browser: Browser, url: str, sessions: int, warmup_s: float, duration_s: float
) -> dict[str, float]:
    contexts = [
        browser.new_context(viewport={"width": 960, "height": 640}) for _ in range(sessions)
    ]
    pages = [c.new_page() for c in contexts]
    try:
        for page in pages:
            page.goto(url + "/")
        for page in pages:
            page.wait_for_function("window.chimpLive && window.chimpLive.frames > 3", timeout=60000)
        time.sleep(warmup_s)
        start = [
            p.evaluate("[window.chimpLive.frames, window.chimpLive.latencies.length]")
            for p in pages
        ]
        began = time.monotonic()
        time.sleep(duration_s)
        elapsed = time.monotonic() - began
        latencies: list[float] = []
        frames = 0
        states = set()
        for page, (f0, n0) in zip(pages, start, strict=True):
            f1, lat, state = page.evaluate(
                "[window.chimpLive.frames, window.chimpLive.latencies, window.chimpLive.state]"
            )
            frames += f1 - f0
            latencies.extend(lat[n0:])
            states.add(state)
    finally:
        for c in contexts:
            c.close()
    if states - {"ok", "no_face"}:
        print(f"  warning: page states {sorted(states)} (is a model in production?)")
    return {
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 99) if latencies else float("nan"),
        "fps_total": frames / elapsed,
        "fps_per_session": frames / elapsed / sessions,
        "frames": frames,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frontend-url", help="a running web app; default: start one")
    parser.add_argument(
        "--max-fps", type=float, default=30.0, help="frame-rate cap of the self-started web app"
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.frontend_url:
            url = args.frontend_url.rstrip("/")
            what = f"web app at {url} (its own serving and model)"
        else:
            serving_url = stack.enter_context(serve(stub_serving()))
            settings = FrontendSettings(
                frontend=FrontendConfig(serving_url=serving_url, max_fps=args.max_fps)
            )
            url = stack.enter_context(serve(create_app(settings)))
            what = f"self-started web app, stub serving (Haar detection), cap {args.max_fps} fps"
        camera = write_y4m(Path(tmp) / "face.y4m", face_frame(), frames=30, fps=30)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
            print(f"frontend round trip ({what}); {args.duration:.0f}s per run")
            print(
                f"{'sessions':>8} {'p50 ms':>8} {'p99 ms':>8} {'fps total':>10} "
                f"{'fps/session':>12} {'frames':>7}"
            )
            for n in args.sessions:
                r = measure(browser, url, n, args.warmup, args.duration)
                print(
                    f"{n:>8} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['fps_total']:>10.1f} "
                    f"{r['fps_per_session']:>12.1f} {r['frames']:>7.0f}"
                )
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
