"""Serving benchmark: raw ONNX Runtime vs the serving API, and alias moves under load.

One run prints, for the same small emotion-style CNN (48x48 gray in, 7 logits out):

* raw in-process ONNX Runtime inferences/s (batch 1, one thread);
* the serving API's requests/s and p50/p99 latency for v2 infer and for predict-image
  (a 640x480 JPEG with one face) at concurrency 1 and 16, with micro-batching on and off;
* failed requests while the production alias is moved 10 times under load (must be 0).

The API runs in a uvicorn subprocess against a real ``mlflow server`` subprocess; the load
generator is httpx on the same machine, so client and server share the CPU cores.

    .venv/bin/python benchmarks/serving.py [--seconds 5] [--batching both|on|off]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import onnxruntime as ort
import torch
from skimage import data as skdata
from torch import nn

from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.models import InputSpec, ModelMetadata

EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
SPEC = InputSpec(height=48, width=48, channels=1, color="gray")
MODEL = "emotion-bench"


class EmotionCnn(nn.Module):
    """A small FER-style CNN: three conv blocks and a two-layer head (~0.7 M parameters)."""

    def __init__(self, classes: int = 7) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)
            )

        self.features = nn.Sequential(block(1, 32), block(32, 64), block(64, 128))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * 6 * 6, 128), nn.ReLU(), nn.Linear(128, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


def export_cnn(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = EmotionCnn().eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 48, 48),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
        opset_version=17,
    )
    return path


def face_jpeg() -> bytes:
    rgb = skdata.astronaut()
    face = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (480, 480))
    canvas = np.zeros((480, 640, 3), dtype=np.uint8)
    canvas[:, 80:560] = face
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


def raw_ort(path: Path, seconds: float) -> float:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, 48, 48), dtype=np.float32)
    for _ in range(50):
        session.run(None, {"input": x})
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, {"input": x})
        count += 1
    return count / (time.perf_counter() - start)


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(url)


def start_mlflow(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    cmd = [
        mlflow, "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", str(workdir / "artifacts"), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = start(cmd, env, workdir / "mlflow.log", workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc, workdir / "mlflow.log")
    return proc, url


def start_serving(
    workdir: Path, mlflow_url: str, batching: bool, tag: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "CHIMP_DATA_DIR": str(workdir / f"serving-{tag}"),
        "CHIMP_MLFLOW__TRACKING_URI": mlflow_url,
        "CHIMP_MODEL_NAME": MODEL,
        "CHIMP_LOG_LEVEL": "WARNING",
        "CHIMP_SERVING__PORT": str(port),
        "CHIMP_SERVING__POLL_INTERVAL_S": "0.5",
        "CHIMP_SERVING__BATCHING__ENABLED": "true" if batching else "false",
    }
    log = workdir / f"serving-{tag}.log"
    proc = start([sys.executable, "-m", "chimp.serving"], env, log, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/ready", proc, log)
    return proc, url


# -- load ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc): robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadResult:
    requests: int
    failures: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_s: float = float("nan")

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / max(1, self.requests)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return float(np.percentile(self.latencies_ms, q))


Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def load(
    url: str, send: Send, concurrency: int, seconds: float, stop_event: asyncio.Event | None = None
) -> LoadResult:
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for _ in range(3):  # warm connections and the model
            await send(client)
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        def done() -> bool:
            if stop_event is not None:
                return stop_event.is_set()
            return time.perf_counter() >= deadline

        async def worker() -> None:
            nonlocal failures
            while not done():
                t0 = time.perf_counter()
                try:
                    response = await send(client)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - t0) * 1000)
                failures += 0 if ok else 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), failures, elapsed, latencies)


def v2_sender() -> Send:
    x = np.random.default_rng(1).random((1, 1, 48, 48), dtype=np.float32)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 1, 48, 48],
                    "datatype": "FP32",
                    "data": [round(float(v), 4) for v in x.ravel()],
                }
            ]
        }
    ).encode()
    headers = {"content-type": "application/json"}

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(f"/v2/models/{MODEL}/infer", content=body, headers=headers)

    return send


def image_sender(jpeg: bytes) -> Send:
    headers = {"content-type": "image/jpeg"}

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        response = await client.post(
            f"/models/{MODEL}/predict-image", content=jpeg, headers=headers
        )
        if response.status_code == 200 and len(response.json()["faces"]) != 1:
            raise httpx.HTTPError("expected exactly one face")
        return response

    return send


def row(label: str, result: LoadResult) -> str:
    return (
        f"| {label:<34} | {result.rps:8.1f} | {result.pct(50):7.2f} | {result.pct(99):7.2f} "
        f"| {result.cpu_ms_per_request:7.2f} | {result.failures:4d} |"
    )


def measure(url: str, pid: int, send: Send, concurrency: int, seconds: float) -> LoadResult:
    before = cpu_seconds(pid)
    result = asyncio.run(load(url, send, concurrency, seconds))
    result.server_cpu_s = cpu_seconds(pid) - before
    return result


async def alias_moves(
    url: str, registry: ModelRegistry, versions: list[str], jpeg: bytes, moves: int
) -> tuple[LoadResult, LoadResult, list[str]]:
    stop_event = asyncio.Event()
    v2 = asyncio.create_task(load(url, v2_sender(), 8, 0, stop_event))
    images = asyncio.create_task(load(url, image_sender(jpeg), 8, 0, stop_event))
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in range(moves):
            target = versions[(i + 1) % len(versions)]
            await asyncio.to_thread(registry.set_alias, MODEL, PRODUCTION, target)
            while True:  # wait until the API answers with the new version
                meta = (await client.get(f"/v2/models/{MODEL}")).json()
                if meta["parameters"]["version"] == target:
                    seen.append(target)
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
    stop_event.set()
    return await v2, await images, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batching", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"cores: {os.cpu_count()}, onnxruntime {ort.__version__}, providers "
          f"{ort.get_available_providers()}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="chimp-bench-") as tmp:
        workdir = Path(tmp)
        onnx_paths = [export_cnn(workdir / f"cnn-{s}.onnx", seed=s) for s in (1, 2, 3)]
        raw = raw_ort(onnx_paths[0], args.seconds)
        print(f"\nraw ONNX Runtime, batch 1, 1 thread: {raw:.1f} inferences/s "
              f"({1000 / raw:.2f} ms each)\n")  # fmt: skip
        jpeg = face_jpeg()
        mlflow, mlflow_url = start_mlflow(workdir)
        try:
            registry = ModelRegistry(mlflow_url, experiment="bench")
            metadata = ModelMetadata(task="face-classification", labels=EMOTIONS, input=SPEC)
            versions = [registry.log_model_version(MODEL, p, metadata).version for p in onnx_paths]
            registry.set_alias(MODEL, PRODUCTION, versions[0])
            modes = {"both": [True, False], "on": [True], "off": [False]}[args.batching]
            print(f"load average before: {os.getloadavg()}")
            print(
                "| run                                |    req/s | p50 ms  | p99 ms  "
                "| srv CPU ms/req | fail |"
            )
            print(
                "|------------------------------------|---------:|--------:|--------:"
                "|--------:|-----:|"
            )
            best: dict[bool, float] = {}
            # Both servers run side by side and the runs alternate, so a burst of other load
            # on the machine does not favour one setting.
            servers = {
                b: start_serving(workdir, mlflow_url, b, "on" if b else "off") for b in modes
            }
            try:
                for name, send in (
                    ("v2 infer", v2_sender()),
                    ("predict-image", image_sender(jpeg)),
                ):
                    for c in (1, 16):
                        for batching, (proc, url) in servers.items():
                            tag = "batching on" if batching else "batching off"
                            result = measure(url, proc.pid, send, c, args.seconds)
                            print(row(f"{name} c={c} ({tag})", result), flush=True)
                            if name == "v2 infer" and c == 16:
                                best[batching] = result.rps
            finally:
                for proc, _ in servers.values():
                    stop(proc)
            for batching, rps in best.items():
                tag = "batching on" if batching else "batching off"
                share = 100 * rps / raw
                print(f"\nv2 infer c=16 ({tag}): {rps:.1f} req/s = {share:.0f}% of raw ORT")
            proc, url = start_serving(workdir, mlflow_url, modes[-1], "moves")  # the default: off
            try:
                v2_res, img_res, seen = asyncio.run(alias_moves(url, registry, versions, jpeg, 10))
            finally:
                stop(proc)
            print(f"\nalias moved {len(seen)} times under load (versions {' -> '.join(seen)}):")
            print(f"  v2 infer c=8:      {v2_res.requests} requests, {v2_res.failures} failed")
            print(f"  predict-image c=8: {img_res.requests} requests, {img_res.failures} failed")
        finally:
            stop(mlflow)


if __name__ == "__main__":
    main()
