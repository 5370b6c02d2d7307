"""The one pydantic-settings class; every knob of the service is read here and nowhere else."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.bounds import SchemaBounds

MIN_ADMIN_TOKEN_CHARS = 24
_PLACEHOLDERS = frozenset(
    {"", "admin", "changeme", "change-me", "change_me", "secret", "password", "token", "test", "xxx",
     "replace-me", "replaceme", "todo", "none", "null", "default"}
)  # fmt: skip


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file (relative paths stay relative to the working directory)."""
    return f"sqlite:///{path}"


def is_placeholder_secret(value: str) -> bool:
    """True for empty, well-known or too-short secrets (a real one is random and long)."""
    stripped = value.strip()
    return (
        stripped.lower() in _PLACEHOLDERS
        or (stripped.startswith("<") and stripped.endswith(">"))
        or len(stripped) < MIN_ADMIN_TOKEN_CHARS
    )


class Settings(BaseSettings):
    """Environment variables prefixed `ABSTRACTOR_` (e.g. `ABSTRACTOR_ENGINE=openai`)."""

    model_config = SettingsConfigDict(env_prefix="ABSTRACTOR_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    data_dir: Path = Field(
        default=Path("var"),
        description="Embedded store, model cache, blobs and upload temp files (created 0700, files 0600).",
    )

    # Store: SQLite file for the embedded default, Postgres (psycopg 3) in production.
    database_url: str = Field(
        default="",
        description="e.g. postgresql+psycopg://user@host:5432/abstractor; default: DATA_DIR/abstractor.db (SQLite).",
    )
    database_app_role: str = Field(
        default="abstractor_app", description="Postgres role that may only INSERT/SELECT the audit trail."
    )
    blob_dir: Path | None = Field(
        default=None,
        description="Keep document bytes here (a relative path is under DATA_DIR); None keeps them in the database.",
    )
    outbox_lease_s: float = 60.0

    # Document limits: enforced in a child process so a hostile file can kill only that child.
    max_document_bytes: int = 50 * 1024 * 1024
    max_pages: int = 500
    max_chars: int = 2_000_000
    parse_timeout_s: float = 15.0
    parse_memory_mb: int = 1024

    # OCR of PDF pages without a usable text layer (scans), in its own limited child process, offline.
    ocr_enabled: bool = True
    ocr_engine: Literal["rapidocr", "tesseract"] = Field(
        default="rapidocr", description="rapidocr (models in the wheel) or Debian's tesseract (tesseract-ocr)."
    )
    ocr_max_pages: int = Field(default=50, description="Pages OCR'd per document; the rest keep no text.")
    ocr_timeout_s: float = Field(default=300.0, description="Wall-clock limit of the OCR child per document.")
    ocr_memory_mb: int = 2048
    ocr_max_pixels: int = Field(default=100_000_000, description="Larger page images are refused (too_large).")
    ocr_min_confidence: float = Field(default=0.8, description="OCR pages below this are flagged in the record.")
    ocr_dpi: int = 300
    ocr_threads: int = Field(default=1, description="CPU threads the OCR engine may use.")

    # Engine: the embedded CPU model, a vLLM (OpenAI-compatible) server, or vLLM in this process.
    engine: Literal["llamacpp", "openai", "vllm"] = "llamacpp"
    grammar_backend: Literal["llguidance", "outlines_core", "xgrammar"] = "llguidance"
    model_path: Path | None = Field(default=None, description="A GGUF file; default: the embedded model.")
    model_sha256: str | None = Field(
        default=None, description="Pinned digest of model_path; the file is refused if it differs."
    )
    n_threads: int | None = None
    n_ctx: int = Field(default=4096, description="Context window (llama.cpp n_ctx, vLLM max_model_len).")
    flash_attn: bool = Field(
        default=True,
        description="llama.cpp flash attention: prompt processing about 15 % faster on CPU (bench.end_to_end).",
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible API of the engine server, e.g. http://vllm:8000/v1."
    )
    openai_model: str = Field(default="abstractor", description="Served model name (vllm serve --served-model-name).")
    openai_api_key: SecretStr | None = Field(default=None, description="Bearer key of the server (vllm --api-key).")
    openai_max_retries: int = Field(default=2, ge=0, description="Retries of a 5xx/timeout before a transient error.")
    openai_response_format: Literal["json_schema", "json_object"] = Field(
        default="json_schema",
        description="json_schema (OpenAI, vLLM); json_object+schema for llama-cpp-python's server.",
    )
    engine_concurrency: int = Field(default=16, ge=1, description="Requests in flight to the engine server.")
    request_timeout_s: float = Field(
        default=120.0, gt=0, description="Limit for one engine request, queueing included."
    )
    vllm_model: str | None = Field(default=None, description="Weights (a local folder) of in-process vLLM.")
    vllm_structured_backend: Literal["xgrammar", "guidance"] = "xgrammar"
    vllm_gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    vllm_kv_cache_gib: float | None = Field(
        default=None, gt=0, description="KV cache size of in-process vLLM; set it on CPUs (default: memory fraction)."
    )
    vllm_enforce_eager: bool = Field(
        default=False, description="Skip graph capture and compilation (starts in seconds; for CPUs and tests)."
    )
    vllm_dtype: str = Field(default="auto", description="Weights dtype of in-process vLLM (auto, bfloat16, ...).")
    vllm_max_model_len: int | None = Field(
        default=None, gt=0, description="Context window of in-process vLLM; default: ABSTRACTOR_N_CTX."
    )
    max_new_tokens: int = 384
    reject_ungrounded: bool = Field(
        default=True, description="Move values not found in the source from `data` to `rejected` (flagged)."
    )

    # --- Generation budgets (workers/pipeline/run.py, workers/engines/llamacpp.py): a generation making no
    # progress is cut, and its job fails as generation_stalled while other jobs go on.
    job_max_generated_tokens: int = Field(
        default=200_000, ge=1, description="Tokens one job's generations may produce in all (chunks and retries)."
    )
    generation_timeout_s: float = Field(
        default=300.0, gt=0, description="Wall time one generation may take on the embedded llama.cpp engine."
    )
    grammar_index_max_gib: float = Field(
        default=8.0,
        gt=0,
        description="Memory the embedded engine may hold in outlines-core indexes (grammar_backend=outlines_core): "
        "a schema whose index would not fit fails as grammar_too_large.",
    )
    # --- end of generation budgets.

    # Confidence: per-value probabilities from calibrations (workers/pipeline/calibration.py).
    calibration_dir: Path | None = Field(
        default=None, description="Calibrations fitted by `abstractor calibrate`, tried before the shipped ones."
    )
    low_confidence_threshold: float = Field(
        default=0.6, ge=0, le=1, description="Calibrated values below this are flagged low_confidence for review."
    )

    # Human review (`/review`, docs/review.md): page images and the queue.
    page_image_max_side_px: int = Field(
        default=1600, ge=200, le=4000, description="Page images (GET /v1/documents/{id}/pages/{n}) fit this size."
    )
    page_image_cache_mb: int = Field(
        default=256, ge=0, description="Rendered page images kept under DATA_DIR/cache/pages (0: none kept)."
    )

    # Chunking (tokens of document text per prompt, and overlap between neighbouring chunks). Chunks end at a
    # page end, a blank line or a sentence end, so no overlap is the default: 150 tokens of it cost 8 % more
    # prompt tokens on the Kleister train PDFs and did not raise F1 (README). These budgets' defaults are
    # PipelineOptions' (tests/service/test_runtime.py keeps them equal).
    chunk_tokens: int = 1800
    chunk_overlap_tokens: int = 0

    # API.
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of the /v1/admin endpoints; None disables them."
    )
    broker_url: str | None = Field(
        default=None,
        description="Redis URL of the Celery broker (readiness pings it); None in embedded mode.",
    )

    # The HTTP front door (service/api/server.py, service/api/guard.py): what one client may hold or send.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Host header values served (comma-separated; `*.example.org`, a CIDR or `*` allowed); others: 400.",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Proxies whose X-Forwarded-For/-Proto are believed (comma-separated); none by default.",
    )
    max_json_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Larger non-upload request bodies are refused (413) unread."
    )
    http_header_timeout_s: float = Field(
        default=10.0, gt=0, description="A request's line and headers must arrive within this (else 408)."
    )
    http_body_timeout_s: float = Field(
        default=300.0, gt=0, description="A request's whole body must arrive within this (else 408)."
    )
    http_body_idle_timeout_s: float = Field(
        default=30.0, gt=0, description="A request body that sends nothing for this long is cut (408)."
    )
    http_keep_alive_s: int = Field(default=5, ge=1, description="An idle keep-alive connection is closed after this.")
    http_max_connections: int = Field(
        default=512, ge=1, description="Open connections served at once; more are answered 503 and closed."
    )
    http_max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="A request line plus headers larger than this is refused (431)."
    )
    auth_failure_limit: int = Field(
        default=20, ge=1, description="Failed authentications per client address and window before 429."
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, description="The window of auth_failure_limit; audited as one row per client and window."
    )

    # --- Schema admission (service/jobs/admission.py, schemas/bounds.py): what a tenant's JSON Schema may be,
    # checked at registration and again when a job loads it; past a bound, POST /v1/schemas answers 422. The
    # defaults are SchemaBounds' own (one owner).
    schema_max_bytes: int = Field(
        default=SchemaBounds.max_bytes, ge=1024, description="The schema's size as compact JSON."
    )
    schema_max_nodes: int = Field(
        default=SchemaBounds.max_nodes,
        ge=1,
        description="Subschemas once every $ref is followed (counted, never built).",
    )
    schema_max_depth: int = Field(
        default=SchemaBounds.max_depth,
        ge=1,
        le=100,
        description="Subschema nesting once $refs are followed (JSON nesting: 4x this).",
    )
    schema_max_properties: int = Field(
        default=SchemaBounds.max_properties, ge=1, description="Properties declared in the whole schema."
    )
    schema_max_string_chars: int = Field(
        default=SchemaBounds.max_string_chars,
        ge=1,
        description="The longest string: a const, an enum member, a default, a pattern, a key.",
    )
    schema_max_enum: int = Field(default=SchemaBounds.max_enum, ge=1, description="Members of one enum.")
    schema_max_repeat: int = Field(
        default=SchemaBounds.max_repeat,
        ge=1,
        description="The largest minItems/maxLength/... and {n,m} count in a pattern (nested: x).",
    )
    schema_max_prompt_chars: int = Field(
        default=SchemaBounds.max_prompt_chars,
        ge=1,
        description="The rendered prompt prefix (instructions and one line per field).",
    )
    schema_admission_timeout_s: float = Field(
        default=10.0, gt=0, description="Wall clock of the child that validates, compiles and renders a schema."
    )
    schema_admission_memory_mb: int = Field(
        default=1024, ge=64, description="Address space (RLIMIT_AS) of that child; past it: schema_too_large."
    )
    # --- end of schema admission.

    # Queue (Celery on Redis, workers/celery_app.py) and its repair crew (service/jobs/relay.py).
    worker_pool: Literal["auto", "threads", "prefork"] = Field(
        default="auto",
        description="auto: threads for engines that batch many jobs (openai, vllm), processes for llamacpp.",
    )
    worker_concurrency: int = Field(
        default=16, ge=1, description="Jobs one threads-pool worker runs at once (`abstractor worker` default)."
    )
    task_soft_time_limit_s: float = Field(default=1800.0, gt=0, description="A job past this fails as time_limit.")
    task_time_limit_s: float = Field(default=1860.0, gt=0, description="The worker process is killed past this.")
    job_deadline_margin_s: float = Field(
        default=60.0, ge=0, description="A running job's deadline is its start + hard limit + this (then requeued)."
    )
    broker_visibility_timeout_s: float | None = Field(
        default=None, gt=0, description="Redis redelivers an unacked message after this; default: deadline + margin."
    )
    broker_health_check_s: float = Field(default=10.0, gt=0, description="Idle broker connections are PINGed first.")
    relay_poll_s: float = Field(default=1.0, gt=0, description="The relay looks for unsent outbox rows this often.")
    relay_batch: int = Field(default=100, ge=1, description="Outbox rows claimed per relay pass.")
    reconcile_interval_s: float = Field(default=30.0, gt=0, description="How often stuck jobs are looked for.")
    queued_timeout_s: float = Field(
        default=3600.0, gt=0, description="A job still queued this long after its message was sent is sent again."
    )
    retry_backoff_s: float = Field(
        default=10.0, ge=0, description="A transient fault requeues the job after this, doubled per attempt."
    )
    tenant_max_in_flight: int = Field(
        default=0,
        ge=0,
        description="Jobs of one tenant running or handed to the queue at once; more wait unsent. 0: no limit.",
    )

    @model_validator(mode="after")
    def _place_files_under_data_dir(self) -> Self:
        # The embedded store and relative blob folders follow DATA_DIR instead of the working directory.
        if not self.database_url:
            self.database_url = sqlite_url(self.data_dir / "abstractor.db")
        if self.blob_dir is not None and not self.blob_dir.is_absolute():
            self.blob_dir = self.data_dir / self.blob_dir
        return self

    @model_validator(mode="after")
    def _check_queue_limits(self) -> Self:
        # Redis must not hand a message to a second worker while the first may still be running it.
        if self.task_soft_time_limit_s >= self.task_time_limit_s:
            raise ValueError("ABSTRACTOR_TASK_SOFT_TIME_LIMIT_S must be below ABSTRACTOR_TASK_TIME_LIMIT_S")
        if self.broker_visibility_timeout_s is not None and self.broker_visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError("ABSTRACTOR_BROKER_VISIBILITY_TIMEOUT_S must exceed ABSTRACTOR_TASK_TIME_LIMIT_S")
        return self

    # Webhooks: signed job notifications (service/webhooks.py), delivered from the webhook outbox.
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing webhook notifications; None refuses webhook_url."
    )
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts or CIDRs (comma-separated) allowed although they resolve to loopback/private addresses.",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Per-attempt timeout of a webhook POST.")
    webhook_max_attempts: int = Field(default=8, ge=1, description="Attempts before a notification is given up.")
    webhook_backoff_s: float = Field(
        default=5.0, gt=0, description="Wait before the first retry; doubled each time, capped at an hour."
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "/" in entry:
                ipaddress.ip_network(entry.strip(), strict=False)  # ValueError: not a CIDR
        return value

    @field_validator("webhook_allow_hosts", "allowed_hosts", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_allow_hosts(cls, value: object) -> object:
        # `a,b` or a JSON list, from the environment; a list from code.
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("["):
                return json.loads(stripped)
            return [part.strip() for part in stripped.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_webhook_secret(self) -> Self:
        # A guessable signing key lets anyone forge notifications that receivers would trust.
        if (
            self.environment != "development"
            and self.webhook_secret is not None
            and is_placeholder_secret(self.webhook_secret.get_secret_value())
        ):
            raise ValueError(
                "ABSTRACTOR_WEBHOOK_SECRET is empty, a placeholder or shorter than "
                f"{MIN_ADMIN_TOKEN_CHARS} characters; set a random secret or unset it"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_admin_token(self) -> Self:
        # Development may use a short token; anywhere else a guessable one would open every tenant.
        if (
            self.environment != "development"
            and self.admin_token is not None
            and is_placeholder_secret(self.admin_token.get_secret_value())
        ):
            raise ValueError(
                "ABSTRACTOR_ADMIN_TOKEN is empty, a placeholder or shorter than "
                f"{MIN_ADMIN_TOKEN_CHARS} characters; set a random token or unset it"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Built once on first use, never at import time, so tests and CLIs can set the environment first."""
    return Settings()
