"""Serving benchmark: raw ONNX Runtime vs the serving API, and alias moves under load.

One run prints, for the same small emotion-style CNN (48x48 gray in, 7 logits out):

* raw in-process ONNX Runtime inferences/s (batch 1, one thread);
* the serving API's requests/s, p50/p99 latency and server CPU per request for v2 infer with JSON
  tensors, v2 infer with the binary tensor extension (binary in and out), and predict-image (a
  640x480 JPEG with one face) at concurrency 1 and 16, for each server variant (default
  settings, micro-batching off, two worker processes);
* failed requests while the production alias is moved 10 times under load (must be 0).

The API runs in uvicorn subprocesses against a real ``mlflow server`` subprocess. The load
generator is ``wrk`` (Debian: ``apt-get install wrk``) with a Lua script for the POST bodies: a C
client takes little of the CPU the server is measured on. Without wrk it falls back to an httpx
asyncio generator, which costs about as much CPU per request as the server and lowers every
figure on a 2-core machine.

    .venv/bin/python benchmarks/serving.py [--seconds 5] [--variants default,batching-off,workers-2]
        [--generator wrk|httpx] [--workloads "v2 infer,v2 binary,predict-image"] [--no-moves]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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
            raise RuntimeError(f"{proc.args!r} exited:\n{log.read_text()[-3000:]}")
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


VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "batching-off": {"CHIMP_SERVING__BATCHING__ENABLED": "false"},
    "workers-2": {"CHIMP_SERVING__WORKERS": "2"},
}


def start_serving(
    workdir: Path, mlflow_url: str, variant: str, tag: str
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
        **VARIANTS[variant],
    }
    log = workdir / f"serving-{tag}.log"
    proc = start([sys.executable, "-m", "chimp.serving"], env, log, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/ready", proc, log)
    if variant == "workers-2":  # every worker loaded its models (readiness answers per process)
        time.sleep(3)
    return proc, url


# -- load ---------------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process and its children (uvicorn workers), from /proc.

    Robust to other load on the machine, unlike requests/s and latency.
    """
    return _cpu_of(pid) + sum(_cpu_of(child) for child in _children(pid))


@dataclass
class LoadResult:
    requests: int
    failures: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float = float("nan")

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / max(1, self.requests)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Workload:
    """One kind of request: a POST body, and how many faces a good answer lists (if any)."""

    path: str
    body: bytes
    content_type: str
    faces: int | None = None
    header: tuple[str, str] | None = None  # one extra request header


def v2_binary_workload() -> Workload:
    """The v2 request of :func:`v2_workload` with the binary tensor extension, binary answer."""
    x = np.random.default_rng(1).random((1, 1, 48, 48), dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [1, 1, 48, 48], "datatype": "FP32",
                 "parameters": {"binary_data_size": x.nbytes}}
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()  # fmt: skip
    return Workload(
        f"/v2/models/{MODEL}/infer",
        header + x.tobytes(),
        "application/octet-stream",
        header=("Inference-Header-Content-Length", str(len(header))),
    )


def v2_workload() -> Workload:
    x = np.random.default_rng(1).random((1, 1, 48, 48), dtype=np.float32)
    tensor = {
        "name": "input",
        "shape": [1, 1, 48, 48],
        "datatype": "FP32",
        "data": [round(float(v), 4) for v in x.ravel()],
    }
    body = json.dumps({"inputs": [tensor]}).encode()
    return Workload(f"/v2/models/{MODEL}/infer", body, "application/json")


def image_workload(jpeg: bytes) -> Workload:
    return Workload(f"/models/{MODEL}/predict-image", jpeg, "image/jpeg", faces=1)


# -- generator 1: wrk (C, event-driven; a Lua script supplies the body and checks answers) -------

_WRK_SCRIPT = """
local f = assert(io.open(os.getenv("CHIMP_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = os.getenv("CHIMP_BODY_TYPE")
local extra_name = os.getenv("CHIMP_HEADER_NAME") or ""
if extra_name ~= "" then wrk.headers[extra_name] = os.getenv("CHIMP_HEADER_VALUE") end
local faces = tonumber(os.getenv("CHIMP_FACES") or "")
bad = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 return end
  if faces then
    local _, n = string.gsub(body, '"box":', "")
    if n ~= faces then bad = bad + 1 end
  end
end
function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  for _, t in ipairs(threads) do failed = failed + t:get("bad") end
  io.write(string.format("CHIMP-RESULT %d %d %d %.1f %.1f\\n", summary.requests, failed,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


class WrkLoad:
    """A running ``wrk``; :meth:`result` waits for it (or interrupts it first)."""

    def __init__(self, url: str, work: Workload, concurrency: int, seconds: float, tmp: Path):
        body_file = tmp / f"body-{abs(hash(work.body))}.bin"
        body_file.write_bytes(work.body)
        script = tmp / "post.lua"
        script.write_text(_WRK_SCRIPT)
        env = {
            **os.environ,
            "CHIMP_BODY_FILE": str(body_file),
            "CHIMP_BODY_TYPE": work.content_type,
            "CHIMP_FACES": "" if work.faces is None else str(work.faces),
            "CHIMP_HEADER_NAME": work.header[0] if work.header else "",
            "CHIMP_HEADER_VALUE": work.header[1] if work.header else "",
        }
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
               "-s", str(script), url + work.path]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)

    def result(self, interrupt: bool = False) -> LoadResult:
        if interrupt:
            self.proc.send_signal(signal.SIGINT)  # wrk stops and reports what it did so far
        out, _ = self.proc.communicate(timeout=600)
        text = out.decode(errors="replace")
        line = next((ln for ln in text.splitlines() if ln.startswith("CHIMP-RESULT")), None)
        if line is None:
            raise RuntimeError(f"wrk failed:\n{text}")
        requests, failed, duration_us, p50_us, p99_us = line.split()[1:]
        return LoadResult(
            int(requests), int(failed), int(duration_us) / 1e6, float(p50_us) / 1000,
            float(p99_us) / 1000,
        )  # fmt: skip


# -- generator 2: httpx asyncio (fallback where wrk is not installed) ----------------------------


async def httpx_load(
    url: str, work: Workload, concurrency: int, seconds: float, stop: asyncio.Event | None = None
) -> LoadResult:
    latencies: list[float] = []
    failures = 0
    headers = {"content-type": work.content_type, **dict([work.header] if work.header else [])}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def send() -> bool:
            response = await client.post(work.path, content=work.body, headers=headers)
            if response.status_code != 200:
                return False
            return work.faces is None or len(response.json()["faces"]) == work.faces

        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        def done() -> bool:
            return stop.is_set() if stop is not None else time.perf_counter() >= deadline

        async def worker() -> None:
            nonlocal failures
            while not done():
                t0 = time.perf_counter()
                try:
                    ok = await send()
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - t0) * 1000)
                failures += 0 if ok else 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(
        len(latencies), failures, elapsed, percentile(latencies, 50), percentile(latencies, 99)
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- runs ---------------------------------------------------------------------------------------


def measure(
    generator: str, url: str, pid: int, work: Workload, concurrency: int, seconds: float, tmp: Path
) -> LoadResult:
    # Warm connections, the model and the batching path before the timed run.
    with httpx.Client(base_url=url, timeout=30) as client:
        headers = {"content-type": work.content_type, **dict([work.header] if work.header else [])}
        for _ in range(3):
            warm = client.post(work.path, content=work.body, headers=headers)
            warm.raise_for_status()
    before = cpu_seconds(pid)
    if generator == "wrk":
        result = WrkLoad(url, work, concurrency, seconds, tmp).result()
    else:
        result = asyncio.run(httpx_load(url, work, concurrency, seconds))
    result.server_cpu_s = cpu_seconds(pid) - before
    return result


def row(label: str, result: LoadResult) -> str:
    return (
        f"| {label:<36} | {result.rps:8.1f} | {result.p50_ms:7.2f} | {result.p99_ms:7.2f} "
        f"| {result.cpu_ms_per_request:7.2f} | {result.failures:4d} |"
    )


async def _follow_moves(
    url: str, registry: ModelRegistry, versions: list[str], moves: int
) -> list[str]:
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
    return seen


def alias_moves(
    generator: str,
    url: str,
    registry: ModelRegistry,
    versions: list[str],
    works: list[Workload],
    moves: int,
    tmp: Path,
) -> tuple[list[LoadResult], list[str]]:
    """Move the production alias ``moves`` times while each workload runs at concurrency 8."""
    if generator == "wrk":
        loads = [WrkLoad(url, w, 8, 600, tmp) for w in works]
        time.sleep(0.5)
        try:
            seen = asyncio.run(_follow_moves(url, registry, versions, moves))
        finally:
            results = [load.result(interrupt=True) for load in loads]
        return results, seen

    async def run() -> tuple[list[LoadResult], list[str]]:
        stop_event = asyncio.Event()
        tasks = [asyncio.create_task(httpx_load(url, w, 8, 0, stop_event)) for w in works]
        try:
            seen = await _follow_moves(url, registry, versions, moves)
        finally:
            stop_event.set()
        return [await t for t in tasks], seen

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--variants",
        default="default,batching-off,workers-2",
        help=f"comma-separated server variants, from {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--generator",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator (default: wrk when installed)",
    )
    parser.add_argument(
        "--workloads",
        default="v2 infer,v2 binary,predict-image",
        help="comma-separated: v2 infer (JSON), v2 binary (binary tensor extension), predict-image",
    )
    parser.add_argument(
        "--no-moves", action="store_true", help="skip the alias-moves-under-load check"
    )
    args = parser.parse_args()
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    torch.set_num_threads(1)
    print(f"cores: {os.cpu_count()}, onnxruntime {ort.__version__}, providers "
          f"{ort.get_available_providers()}, load generator: {args.generator}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="chimp-bench-") as tmp:
        workdir = Path(tmp)
        onnx_paths = [export_cnn(workdir / f"cnn-{s}.onnx", seed=s) for s in (1, 2, 3)]
        raw = raw_ort(onnx_paths[0], args.seconds)
        print(f"\nraw ONNX Runtime, batch 1, 1 thread: {raw:.1f} inferences/s "
              f"({1000 / raw:.2f} ms each)\n")  # fmt: skip
        jpeg = face_jpeg()
        every = {
            "v2 infer": v2_workload(),
            "v2 binary": v2_binary_workload(),
            "predict-image": image_workload(jpeg),
        }
        works = {name: every[name] for name in workloads}
        mlflow, mlflow_url = start_mlflow(workdir)
        try:
            registry = ModelRegistry(mlflow_url, experiment="bench")
            metadata = ModelMetadata(task="face-classification", labels=EMOTIONS, input=SPEC)
            versions = [registry.log_model_version(MODEL, p, metadata).version for p in onnx_paths]
            registry.set_alias(MODEL, PRODUCTION, versions[0])
            print(f"load average before: {os.getloadavg()}")
            print(
                "| run                                  |    req/s | p50 ms  | p99 ms  "
                "| srv CPU ms/req | fail |"
            )
            print(
                "|--------------------------------------|---------:|--------:|--------:"
                "|--------:|-----:|"
            )
            best: dict[str, float] = {}
            # All variants run side by side and the runs alternate, so a burst of other load
            # on the machine does not favour one setting.
            servers = {v: start_serving(workdir, mlflow_url, v, v) for v in variants}
            try:
                for name, work in works.items():
                    for c in (1, 16):
                        for variant, (proc, url) in servers.items():
                            result = measure(
                                args.generator, url, proc.pid, work, c, args.seconds, workdir
                            )
                            print(row(f"{name} c={c} ({variant})", result), flush=True)
                            if name.startswith("v2") and c == 16:
                                best[f"{name} c=16 ({variant})"] = result.rps
            finally:
                for proc, _ in servers.values():
                    stop(proc)
            print(f"load average after: {os.getloadavg()}")
            for label, rps in best.items():
                share = rps / raw
                print(f"{label}: {rps:.1f} req/s = {share:.2f}x raw ORT single-thread batch-1")
            if args.no_moves:
                return
            proc, url = start_serving(workdir, mlflow_url, "default", "moves")
            try:
                (v2_res, img_res), seen = alias_moves(
                    args.generator, url, registry, versions, [every["v2 infer"],
                    every["predict-image"]], 10, workdir,
                )  # fmt: skip
            finally:
                stop(proc)
            print(f"\nalias moved {len(seen)} times under load (versions {' -> '.join(seen)}):")
            print(f"  v2 infer c=8:      {v2_res.requests} requests, {v2_res.failures} failed")
            print(f"  predict-image c=8: {img_res.requests} requests, {img_res.failures} failed")
        finally:
            stop(mlflow)


if __name__ == "__main__":
    main()
