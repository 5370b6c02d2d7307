"""The one pydantic-settings class; every knob of the service is read here and nowhere else."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment variables prefixed `ABSTRACTOR_` (e.g. `ABSTRACTOR_ENGINE=openai`)."""

    model_config = SettingsConfigDict(env_prefix="ABSTRACTOR_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    data_dir: Path = Field(default=Path("var"), description="Embedded store, model cache and blobs.")

    # Store: SQLite file for the embedded default, Postgres (psycopg 3) in production.
    database_url: str = Field(
        default="sqlite:///var/abstractor.db",
        description="e.g. postgresql+psycopg://user@host:5432/abstractor",
    )
    database_app_role: str = Field(
        default="abstractor_app", description="Postgres role that may only INSERT/SELECT the audit trail."
    )
    blob_dir: Path | None = Field(
        default=None, description="Keep document bytes here; None keeps them in the database."
    )
    outbox_lease_s: float = 60.0

    # Document limits: enforced in a child process so a hostile file can kill only that child.
    max_document_bytes: int = 50 * 1024 * 1024
    max_pages: int = 500
    max_chars: int = 2_000_000
    parse_timeout_s: float = 15.0
    parse_memory_mb: int = 1024

    # Engine.
    engine: Literal["llamacpp"] = "llamacpp"
    grammar_backend: Literal["llguidance", "outlines_core", "xgrammar"] = "llguidance"
    model_path: Path | None = Field(default=None, description="A GGUF file; default: the embedded model.")
    model_sha256: str | None = Field(
        default=None, description="Pinned digest of model_path; the file is refused if it differs."
    )
    n_threads: int | None = None
    n_ctx: int = 4096
    max_new_tokens: int = 384
    reject_ungrounded: bool = Field(
        default=True, description="Move values not found in the source from `data` to `rejected` (flagged)."
    )

    # Chunking (tokens of document text per prompt, and overlap between neighbouring chunks).
    chunk_tokens: int = 1800
    chunk_overlap_tokens: int = 150

    def document_limits(self) -> dict[str, float | int]:
        """Limits in the plain shape `workers.documents` takes (it must not import the service)."""
        return {
            "max_bytes": self.max_document_bytes,
            "max_pages": self.max_pages,
            "max_chars": self.max_chars,
            "timeout_s": self.parse_timeout_s,
            "memory_mb": self.parse_memory_mb,
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Built once on first use, never at import time, so tests and CLIs can set the environment first."""
    return Settings()
