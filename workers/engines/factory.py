"""Build the configured engine from plain arguments (the caller maps Settings onto these)."""

from __future__ import annotations

from pathlib import Path

from workers.engines.protocol import Engine
from workers.errors import ConfigError


def build_engine(
    kind: str,
    *,
    grammar_backend: str = "llguidance",
    model_path: Path | None = None,
    model_sha256: str | None = None,
    cache_dir: Path = Path("var/models"),
    n_ctx: int = 4096,
    n_threads: int | None = None,
) -> Engine:
    """The engine named by `kind`; unknown kinds are a configuration error, not a silent fallback."""
    if kind == "llamacpp":
        from workers.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(
            model_path=model_path,
            model_sha256=model_sha256,
            cache_dir=cache_dir,
            grammar_backend=grammar_backend,
            n_ctx=n_ctx,
            n_threads=n_threads,
        )
    raise ConfigError(f"engine {kind!r} is not available in this build (choose 'llamacpp')", code="engine_missing")
