"""How `Settings` map onto the workers' plain arguments (`workers` must not import the service)."""

from __future__ import annotations

from service.config import Settings
from workers.documents.model import LimitsSpec
from workers.engines.factory import build_engine
from workers.engines.model_files import QWEN25_CODER_05B
from workers.engines.protocol import Engine
from workers.pipeline.run import PipelineOptions


def limits_from(settings: Settings) -> LimitsSpec:
    """Document limits from the one Settings class."""
    return LimitsSpec(
        max_bytes=settings.max_document_bytes,
        max_pages=settings.max_pages,
        max_chars=settings.max_chars,
        timeout_s=settings.parse_timeout_s,
        memory_mb=settings.parse_memory_mb,
    )


def options_from(settings: Settings) -> PipelineOptions:
    """Pipeline budgets from the one Settings class."""
    return PipelineOptions(
        max_new_tokens=settings.max_new_tokens,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        reject_ungrounded=settings.reject_ungrounded,
    )


def engine_from(settings: Settings) -> Engine:
    """The configured engine (loading a model takes a few seconds)."""
    return build_engine(
        settings.engine,
        grammar_backend=settings.grammar_backend,
        model_path=settings.model_path,
        model_sha256=settings.model_sha256,
        cache_dir=settings.data_dir / "models",
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
    )


def model_ref(settings: Settings) -> tuple[str, str]:
    """(model, backend) that jobs are keyed by: the engine these settings build, without loading it."""
    model = settings.model_path.stem if settings.model_path is not None else QWEN25_CODER_05B.name
    return model, f"{settings.engine}+{settings.grammar_backend}"
