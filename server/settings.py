"""Server settings: one object, from `ALT_*` environment variables and `alt` flags, validated
at start. This is the edge: each part receives only the few numbers it runs by (`batch_limits()`,
`decode_limits()`, `backend_spec()`), never the whole object."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from media import Limits
from model.contract import ClipShape, ModelMeta

from .engine import Backend, Engine, Metrics, create_backend
from .engine.backends import BackendSpec
from .engine.limits import BatchLimits, DecodeLimits

# The model `make run` serves when no checkpoint is named: trained by `training/` and
# shipped inside the package.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "default"


def _cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALT_", extra="forbid")

    checkpoint: Path = Field(DEFAULT_CHECKPOINT, description="ALT checkpoint directory")
    backend: Literal["torch", "onnxruntime", "tensorrt", "fake"] = Field(
        "torch", description="fake: a deterministic stand-in with no weights, for tests"
    )
    onnx_dir: Path | None = Field(
        None, description="exported ONNX directory (onnxruntime and tensorrt backends)"
    )
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1, ...")
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    # Batching
    max_batch_size: int | None = Field(
        None, ge=1, description="clips per forward pass (default: 8 on the CPU, 64 on a GPU)"
    )
    compile: bool = Field(
        False,
        description="torch: compile the video forward per batch bucket (1, 2, 4, ... up to "
        "max_batch_size; CUDA graphs for the small ones on a GPU), warmed up at start-up",
    )
    max_wait_ms: float = Field(5.0, ge=0, description="how long a batch waits to fill")
    max_in_flight: int = Field(
        64, ge=1, description="requests in progress (upload to answer) before 429"
    )
    max_batch_queue: int = Field(64, ge=1, description="videos waiting for the model before 429")
    request_timeout_s: float = Field(
        60.0, gt=0, description="decode + labels + queue + inference budget before 504"
    )

    # Decoding and the split of the cores (README: "Cores: decoding and the model")
    decode_workers: int = Field(
        default_factory=lambda: _cores(),
        ge=1,
        description="worker processes decoding uploads (default: one per core)",
    )
    decode_threads: int = Field(1, ge=0, description="codec threads per decode worker (0: auto)")
    decode_timeout_s: float = Field(30.0, gt=0, description="wall-clock limit of one decode")
    decode_rate_mpx: float = Field(
        400.0,
        gt=0,
        description="megapixels a decode is assumed to decode per second: a clip whose "
        "sampled frames need more than this times decode_timeout_s is refused before decoding",
    )
    decode_nice: int = Field(
        10, ge=0, le=19, description="CPU priority below the model's for decode workers"
    )
    decode_memory_mb: int = Field(
        4096, ge=0, description="address-space cap of each decode worker (0: none)"
    )
    decode_device: Literal["cpu", "cuda"] = Field(
        "cpu", description="cuda: decode with NVDEC (FFmpeg hardware acceleration)"
    )
    model_threads: int = Field(
        default_factory=lambda: _cores(),
        ge=1,
        description="intra-op threads of the model on the CPU (default: one per core)",
    )

    # Input limits
    max_upload_mb: float = Field(100.0, gt=0)
    max_duration_s: float = Field(600.0, gt=0)
    max_pixels: int = Field(Limits.max_pixels, ge=1)
    max_labels: int = Field(1000, ge=1)
    max_label_chars: int = Field(200, ge=1)
    label_cache_size: int = Field(128, ge=1, description="label sets whose embeddings are kept")

    # HTTP
    body_timeout_s: float = Field(30.0, gt=0, description="longest stall within an upload")
    max_uploads_mb: float = Field(
        1024.0, gt=0, description="upload bytes all requests may hold at once before 429"
    )
    keep_alive_s: float = Field(5.0, gt=0, description="idle keep-alive connections close")
    header_timeout_s: float = Field(
        5.0, gt=0, description="a request head (line and headers) not complete by then: 408, closed"
    )
    max_head_kb: int = Field(
        256,
        ge=1,
        description="request line and headers over this: 431 (labels travel in the query)",
    )
    max_connections_per_client: int = Field(
        0, ge=0, description="open connections one client address may hold, then 503 (0: no limit)"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections before 503 (uvicorn limit_concurrency)"
    )
    shutdown_timeout_s: float = Field(
        20.0, gt=0, description="on SIGTERM, how long in-flight requests may finish"
    )

    # Timelines and jobs (long videos)
    max_sync_duration_s: float = Field(
        120.0, gt=0, description="longest video a timeline is computed for in the request"
    )
    timeline_rate: float = Field(
        1.0, ge=0, description="a timeline's deadline grows by this many seconds per video second"
    )
    jobs_dir: Path = Field(
        Path("alt-jobs"), description="the jobs' SQLite database and spooled uploads"
    )
    job_workers: int = Field(1, ge=1, description="jobs running at once (own decode processes)")
    max_jobs: int = Field(100, ge=1, description="jobs queued or running before 429")
    max_job_upload_mb: float = Field(4096.0, gt=0, description="largest upload of one job")
    jobs_quota_mb: float = Field(
        20480.0, gt=0, description="spooled uploads of all unfinished jobs before 429"
    )
    max_job_duration_s: float = Field(14400.0, gt=0, description="longest video of a job")
    job_ttl_s: float = Field(
        86400.0, gt=0, description="how long a finished job and its result are kept"
    )

    # The video library (index once, then relabel and search without decoding)
    library: str | None = Field(
        None,
        description="the library: a folder, or an object-store URI (s3://bucket/path) that "
        "several servers share (default: <jobs_dir>/library)",
    )
    library_index_rows: int = Field(
        100_000, ge=1, description="windows stored before search goes through an ANN index"
    )
    max_query_chars: int = Field(200, ge=1, description="longest search text")
    max_search_k: int = Field(100, ge=1, description="most moments one search returns")

    # Live streams (POST /streams)
    max_streams: int = Field(8, ge=0, description="streams watched at once before 429")
    streams_allow_private: bool = Field(
        False,
        description="let stream and webhook URLs reach loopback, private and link-local "
        "addresses (and file:// sources)",
    )
    stream_timeout_s: float = Field(
        10.0, gt=0, description="a source silent this long is reconnected (also the open limit)"
    )

    ray_start_timeout_s: float = Field(
        300.0, gt=0, description="Ray mode: how long the ingress waits for a first Model replica"
    )

    samples_dir: Path | None = Field(
        None,
        description="sample videos for the web page (default: <checkpoint or onnx_dir>/samples)",
    )

    api_key: SecretStr | None = Field(None, description="require 'Authorization: Bearer <key>'")

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value):
        # compose passes ALT_API_KEY="" when unset: that means "no key", not "the empty key".
        return None if value in ("", None) else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.max_batch_size is None:
            # Measured: on the CPU throughput is flat past 8 clips (BENCHMARKS.md); a GPU
            # wants far more clips per pass than that.
            self.max_batch_size = 64 if self.device.startswith("cuda") else 8
        # Absolute, so a Ray replica started elsewhere finds the same folder.
        self.jobs_dir = self.jobs_dir.expanduser().absolute()
        if not self.library:
            self.library = str(self.jobs_dir / "library")
        elif "://" not in self.library:
            self.library = str(Path(self.library).expanduser().absolute())
        if self.backend == "torch" and not (self.checkpoint / "config.json").is_file():
            raise ValueError(f"no ALT checkpoint at {self.checkpoint} (config.json missing)")
        if self.backend in ("onnxruntime", "tensorrt") and self.onnx_dir is None:
            raise ValueError(f"the {self.backend} backend needs onnx_dir (ALT_ONNX_DIR)")
        if self.samples_dir is None and self.backend != "fake":
            self.samples_dir = (
                self.checkpoint if self.backend == "torch" else self.onnx_dir
            ) / "samples"
        return self

    @property
    def model_dir(self) -> Path | None:
        """The folder of the served model's files (a checkpoint or an export)."""
        return {"torch": self.checkpoint, "fake": None}.get(self.backend, self.onnx_dir)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_uploads_bytes(self) -> int:
        return int(self.max_uploads_mb * 1024 * 1024)

    # ---- unpacked for the parts ----------------------------------------------------------

    def batch_limits(self) -> BatchLimits:
        assert self.max_batch_size is not None  # set by the validator
        return BatchLimits(
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_wait_ms,
            max_queue=self.max_batch_queue,
            label_cache_size=self.label_cache_size,
            compiled=self.compile,
        )

    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(
            workers=self.decode_workers,
            timeout_s=self.decode_timeout_s,
            rate_mpx=self.decode_rate_mpx,
            nice=self.decode_nice,
            memory_mb=self.decode_memory_mb,
            threads=self.decode_threads,
            device=self.decode_device,
            max_pixels=self.max_pixels,
            max_duration_s=self.max_duration_s,
            max_sync_duration_s=self.max_sync_duration_s,
            max_job_duration_s=self.max_job_duration_s,
            window_batch=self.max_batch_size or 8,
        )

    def backend_spec(self) -> BackendSpec:
        buckets: tuple[int, ...] = ()
        if self.compile and self.max_batch_size:
            buckets = tuple(b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b < self.max_batch_size)
            buckets += (self.max_batch_size,)
        return BackendSpec(
            kind=self.backend, checkpoint=self.checkpoint, onnx_dir=self.onnx_dir,
            device=self.device, dtype=self.dtype, threads=self.model_threads,
            compile_buckets=buckets,
        )  # fmt: skip

    def in_process_engine(
        self, backend: Backend | None = None, metrics: Metrics | None = None
    ) -> Engine:
        """The engine of `alt serve`: the model in this process (`backend`, else the one
        named here), decoding in worker processes of this machine."""
        return Engine.in_process(
            backend or create_backend(self.backend_spec()),
            self.batch_limits(),
            self.decode_limits(),
            self.request_timeout_s,
            metrics or Metrics(),
            self.timeline_rate,
        )

    def clip_shape(self) -> ClipShape:
        """What a video becomes for the named model, read from its files without loading it
        (a driver that only plans decoding)."""
        if self.backend == "torch":
            from model.checkpoint import read_config

            return read_config(self.checkpoint).clip_shape
        if self.backend == "fake":
            from .engine.backends.fake import META

            return META.clip_shape
        meta = json.loads((Path(self.onnx_dir or ".") / "meta.json").read_text())
        return ModelMeta.from_json(meta).clip_shape
