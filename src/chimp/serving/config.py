"""Settings of the serving service: ``ServingSettings`` with its one ``serving`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from chimp.shared.settings import ChimpSettings, Section

ProviderChoice = Literal["auto", "cpu", "cuda"]


class DetectorConfig(Section):
    """OpenCV Haar face detection, tuned for live video rather than recall on tiny faces."""

    cascade: str = Field(
        default="haarcascade_frontalface_alt2.xml",
        description="OpenCV Haar cascade file under cv2.data.haarcascades. alt2 measured faster "
        "than 'default' at the same recall on webcam-like frames.",
    )
    max_side: int = Field(
        default=320,
        ge=32,
        description="Detection runs on a copy downscaled so its longer side is at most this. "
        "Haar cost grows with pixel count; 320 px found the test face in 13 of 24 placements "
        "and sizes at 6.6 ms, 240 px in 8 of 24 at 5.9 ms.",
    )
    scale_factor: float = Field(default=1.2, gt=1.0)
    min_neighbors: int = Field(
        default=3,
        ge=0,
        description="Overlapping detections needed to accept a face: lower finds more faces "
        "(3 gave no false positives on noise frames), higher rejects more false ones.",
    )
    min_size: int = Field(
        default=64,
        ge=1,
        description="Smallest face in original image pixels (64 px = 1/7.5 of a 480-px frame). "
        "Smaller values find smaller faces and cost more.",
    )
    crop_margin: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Extra border around each face, as a fraction."
    )
    max_faces: int = Field(default=16, ge=1, description="Largest faces kept per image.")


class BatchingConfig(Section):
    """Opportunistic micro-batching of concurrent requests for the same model version.

    Requests that arrive while every inference slot is busy are merged into one ONNX Runtime
    call. No request waits for a batch to fill, so an idle server answers as fast as without it.
    On by default: with 16 concurrent v2 requests on 2 CPU cores it cut server CPU per request
    from ~1.5-2.0 ms to ~1.1-1.3 ms and raised throughput 30-70%, mostly by sharing one thread
    hand-off and one ``session.run`` between several requests (benchmarks/serving.py,
    docs/serving.md).
    """

    enabled: bool = True
    max_batch_size: int = Field(
        default=8,
        ge=1,
        description="Most rows merged into one call. 8 measured as fast as 16-32 on a small "
        "CNN with lower tail latency; a larger batch only makes the last request wait longer.",
    )


class MonitoringConfig(Section):
    """What serving records of its predictions, and how drift is judged (docs/monitoring.md)."""

    enabled: bool = Field(
        default=True,
        description="Record every prediction per model version in Redis windows (CHIMP_REDIS_URL).",
    )
    window_s: int = Field(
        default=60, ge=1, le=86_400, description="Length of one recording window, seconds."
    )
    flush_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often this process adds its windows to Redis (and on shutdown).",
    )
    retention_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long windows are kept in Redis, seconds."
    )
    key_prefix: str = Field(
        default="chimp:monitoring", min_length=1, description="Prefix of every Redis key."
    )
    period_s: int = Field(
        default=3600, ge=1, description="Default period of the drift report, seconds."
    )
    min_count: int = Field(
        default=30, ge=1, description="Fewer predictions in the period: 'not enough data'."
    )
    p_value: float = Field(
        default=0.05, gt=0, lt=1, description="Chi-squared and KS p-values below this are drift."
    )
    js_distance: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Jensen-Shannon distance (base 2) of label shares above this is drift.",
    )
    chi2_max_count: int = Field(
        default=1000,
        ge=1,
        description="Up to this many predictions labels are tested with chi-squared, "
        "above it with the Jensen-Shannon distance.",
    )
    drift_refresh_s: float = Field(
        default=60.0, gt=0, description="How often the drift gauges of served versions refresh."
    )


class ServingConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5254, ge=1, le=65535)
    models: list[str] | None = Field(
        default=None,
        description="Models loaded at start and required for readiness "
        "(their production version). Defaults to [model_name].",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Server processes sharing the port (uvicorn workers). Each loads its own "
        "copy of the models and follows the registry on its own; /metrics reports the process "
        "that answers the scrape.",
    )
    poll_interval_s: float = Field(
        default=2.0, gt=0, description="How often aliases are re-read from the registry."
    )
    retry_failed_after_s: float = Field(
        default=30.0, ge=0, description="A version that failed to load is retried after this."
    )
    idle_unload_s: float = Field(
        default=600.0,
        gt=0,
        description="A version no alias points at is dropped after this long without requests.",
    )
    cache_dir: Path | None = Field(
        default=None, description="Downloaded ONNX files; defaults to <data_dir>/serving/models."
    )
    providers: ProviderChoice = Field(
        default="auto",
        description="ONNX Runtime execution provider: auto = CUDA when onnxruntime-gpu sees a "
        "GPU, else CPU.",
    )
    intra_op_threads: int = Field(
        default=1, ge=0, description="Threads inside one ONNX Runtime call (0 = ORT default)."
    )
    inference_threads: int = Field(
        default=2, ge=1, description="ONNX Runtime calls that may run at once (thread limiter)."
    )
    image_threads: int = Field(
        default=2, ge=1, description="Decode/detect/preprocess calls that may run at once."
    )
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024,
        gt=0,
        description="Largest image upload (whole request body); larger ones get 413 while "
        "the body is still arriving.",
    )
    max_infer_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest JSON body for tensor inference."
    )
    warmup: bool = Field(default=True, description="Run one inference before a version serves.")
    detector: DetectorConfig = DetectorConfig()
    batching: BatchingConfig = BatchingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()


class ServingSettings(ChimpSettings):
    serving: ServingConfig = ServingConfig()

    def served_models(self) -> list[str]:
        return list(self.serving.models) if self.serving.models is not None else [self.model_name]

    def model_cache_dir(self) -> Path:
        return self.serving.cache_dir or self.data_dir / "serving" / "models"
