"""Build the configured engine from plain arguments (the caller maps Settings onto these)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from workers.engines.constraints import GRAMMAR_INDEX_MAX_GIB
from workers.engines.protocol import Engine
from workers.errors import ConfigError

ENGINES = ("llamacpp", "openai", "vllm")


def build_engine(
    kind: str,
    *,
    grammar_backend: str = "llguidance",
    model_path: Path | None = None,
    model_sha256: str | None = None,
    cache_dir: Path = Path("var/models"),
    n_ctx: int = 4096,
    n_threads: int | None = None,
    flash_attn: bool = True,
    generation_timeout_s: float | None = None,
    grammar_index_max_gib: float = GRAMMAR_INDEX_MAX_GIB,
    openai_base_url: str | None = None,
    openai_model: str = "abstractor",
    openai_api_key: str | None = None,
    openai_max_retries: int = 2,
    openai_response_format: str = "json_schema",
    concurrency: int = 16,
    request_timeout_s: float = 120.0,
    vllm_model: str | None = None,
    vllm_backend: str = "xgrammar",
    vllm_gpu_memory_utilization: float = 0.9,
    vllm_kv_cache_gib: float | None = None,
    vllm_enforce_eager: bool = False,
    vllm_dtype: str = "auto",
    vllm_max_model_len: int | None = None,
) -> Engine:
    """The engine named by `kind`; unknown kinds are a configuration error, not a silent fallback.

    `generation_timeout_s` is the embedded engine's time budget per generation, kept inside the decode;
    the server and vLLM engines bound each request by `request_timeout_s`.
    """
    if kind == "llamacpp":
        from workers.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(
            model_path=model_path,
            model_sha256=model_sha256,
            cache_dir=cache_dir,
            grammar_backend=grammar_backend,
            n_ctx=n_ctx,
            n_threads=n_threads,
            flash_attn=flash_attn,
            generation_timeout_s=generation_timeout_s,
            grammar_index_max_gib=grammar_index_max_gib,
        )
    if kind == "openai":
        if not openai_base_url:
            raise ConfigError("ABSTRACTOR_ENGINE=openai needs ABSTRACTOR_OPENAI_BASE_URL", code="engine_config")
        from workers.engines.openai_compat import OpenAICompatEngine
        from workers.engines.openai_wire import ResponseFormatStyle

        return OpenAICompatEngine(
            base_url=openai_base_url,
            model=openai_model,
            api_key=openai_api_key,
            concurrency=concurrency,
            timeout_s=request_timeout_s,
            max_retries=openai_max_retries,
            default_context_tokens=n_ctx,
            response_format_style=cast(ResponseFormatStyle, openai_response_format),  # checked by the engine
        )
    if kind == "vllm":
        if not vllm_model:
            raise ConfigError("ABSTRACTOR_ENGINE=vllm needs ABSTRACTOR_VLLM_MODEL", code="engine_config")
        from workers.engines.vllm_local import VllmEngine

        return VllmEngine(
            model=vllm_model,
            backend=vllm_backend,
            max_model_len=vllm_max_model_len or n_ctx,
            gpu_memory_utilization=vllm_gpu_memory_utilization,
            kv_cache_gib=vllm_kv_cache_gib,
            enforce_eager=vllm_enforce_eager,
            dtype=vllm_dtype,
            request_timeout_s=request_timeout_s,
        )
    raise ConfigError(f"unknown engine {kind!r}; choose one of {ENGINES}", code="engine_missing")
