"""Evaluation gate benchmark: what the gate adds to a run, and how soon serving follows it.

1. Scores two emotion CNNs (the built-in plugin's architecture, exported to ONNX) on a
   1,000-image 48x48 evaluation set through the gate's scoring path, and runs the whole gate
   (:func:`chimp.training.gate.gate_version`) against a real ``mlflow server``: download both
   models and the champion's recorded set, score both, move the alias, keep the evidence.
   Prints the seconds each takes (target: the gate adds under 3 s on 2 cores).
2. Serving (in-process, default settings) answers with version 1; the gate promotes version 2;
   the time from the gate's return (the moment the worker records "task succeeded") to the
   first answer from version 2 is printed (target: under 5 s with default settings).

    .venv/bin/python benchmarks/gate.py [--images 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.mlflow import _mlflow_binary, _stop, _wait_healthy
from tests.fixtures.ports import free_port
from tests.training.synthetic import EMOTIONS, pattern

from chimp.serving.app import create_app
from chimp.serving.config import ServingSettings
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.continual import PromotionPolicy
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.settings import MlflowConfig
from chimp.training.evaluation import (
    CandidateData,
    EvaluationItem,
    EvaluationSet,
    score,
)
from chimp.training.gate import gate_version
from chimp.training.records import ModelRecords
from chimp.training.splits import image_hash

SPEC = InputSpec(height=48, width=48, channels=1, color="gray")
METADATA = ModelMetadata(task="image-classification", labels=EMOTIONS, input=SPEC)


def evaluation_set(images: int) -> EvaluationSet:
    rng = np.random.default_rng(0)
    items = []
    for n in range(images):
        label = n % len(EMOTIONS)
        gray = pattern(label, 48, rng)
        bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        items.append(EvaluationItem(image_hash(bgr), EMOTIONS[label], bgr))
    return EvaluationSet("benchmark", items)


def cnn_onnx(path: Path, seed: int) -> Path:
    import torch

    from chimp.training.plugins.builtin import classifier

    torch.manual_seed(seed)
    model = classifier.CompactCNN(1, len(EMOTIONS))
    return classifier.export_onnx(model, SPEC, path)


def start_mlflow(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "mlflow.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [_mlflow_binary(), "server", "--backend-store-uri", f"sqlite:///{workdir / 'db'}",
         "--artifacts-destination", str(workdir / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    _wait_healthy(proc, url, log)
    return proc, url


async def serving_follows(url: str, name: str, promote: object, want: str, data_dir: Path) -> float:
    settings = ServingSettings(
        _env_file=None,
        data_dir=data_dir,
        model_name=name,
        mlflow=MlflowConfig(tracking_uri=url),
    )
    app = create_app(settings)
    png = cv2.imencode(".png", pattern(3, 48, np.random.default_rng(1)))[1].tobytes()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:

            async def version() -> str:
                r = await client.post(
                    f"/models/{name}/predict-image?mode=whole",
                    content=png,
                    headers={"content-type": "image/png"},
                )
                return str(r.json()["model"]["version"]) if r.status_code == 200 else ""

            while await version() != "1":
                await asyncio.sleep(0.05)
            await asyncio.to_thread(promote)  # type: ignore[arg-type]
            succeeded = time.perf_counter()
            while await version() != want:
                await asyncio.sleep(0.02)
            return time.perf_counter() - succeeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = evaluation_set(args.images)
        champion = cnn_onnx(root / "champion.onnx", 1)
        candidate = cnn_onnx(root / "candidate.onnx", 2)
        score(champion, METADATA, data)  # warm caches once
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            score(champion, METADATA, data)
            score(candidate, METADATA, data)
            times.append(time.perf_counter() - start)
        print(f"scoring both models on {len(data)} images: best {min(times):.2f} s")

        proc, url = start_mlflow(root)
        try:
            registry = ModelRegistry(url, experiment="bench")
            records = ModelRecords(url, experiment="bench")
            policy = PromotionPolicy(min_value=0, min_improvement=0)
            name = f"bench-{uuid.uuid4().hex[:8]}"
            v1 = registry.log_model_version(name, champion, METADATA)
            # The first version's gate records the 1,000 images as its evaluation data.
            gate_version(
                registry, records, name, v1.version, policy=policy,
                candidate=CandidateData(held_out=data, trained=set()), work_dir=root,
            )  # fmt: skip
            assert registry.aliases(name)[PRODUCTION] == v1.version
            durations = []
            for n in range(args.repeat):
                onnx = cnn_onnx(root / f"c{n}.onnx", 10 + n)
                info = registry.log_model_version(name, onnx, METADATA)
                start = time.perf_counter()
                decision = gate_version(
                    registry, records, name, info.version, policy=policy, promote=False,
                    work_dir=root,
                )  # fmt: skip
                durations.append(time.perf_counter() - start)
                assert decision.evaluation is not None
                assert decision.evaluation.images == len(data)
            print(
                f"whole gate (MLflow downloads, both scores, alias move, evidence) on "
                f"{len(data)} images: median {sorted(durations)[len(durations) // 2]:.2f} s"
            )

            better = registry.log_model_version(name, candidate, METADATA)

            def promote() -> None:
                registry.set_alias(name, PRODUCTION, better.version)

            # Production back to v1 for serving's first answer, then the gate's move to the new one.
            registry.set_alias(name, PRODUCTION, v1.version)
            follow = asyncio.run(
                serving_follows(url, name, promote, better.version, root / "serving")
            )
            print(f"'task succeeded' -> serving answers with the promoted version: {follow:.2f} s")
        finally:
            _stop(proc)


if __name__ == "__main__":
    main()
