"""The one pydantic-settings class; every knob of the service is read here and nowhere else."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_ADMIN_TOKEN_CHARS = 24
_PLACEHOLDERS = frozenset(
    {"", "admin", "changeme", "change-me", "change_me", "secret", "password", "token", "test", "xxx",
     "replace-me", "replaceme", "todo", "none", "null", "default"}
)  # fmt: skip


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

    # API.
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of the /v1/admin endpoints; None disables them."
    )
    broker_url: str | None = Field(
        default=None,
        description="Redis URL of the Celery broker (readiness pings it); None in embedded mode.",
    )

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
