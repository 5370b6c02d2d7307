"""How `Settings` map onto the workers' plain arguments (`workers` must not import the service).

Processes that run jobs (`service.processes`, the CLI) import this; the API never does, since building
an engine loads the engines. The (model, backend) pair jobs are keyed by is `service.jobs.identity`'s;
`model_ref` is re-exported here for the callers that knew it here.
"""

from __future__ import annotations

from service.config import Settings
from service.jobs.admission import bounds_from
from service.jobs.identity import model_ref
from service.store.files import private_dir
from workers.documents.model import LimitsSpec, OcrSpec
from workers.engines.factory import build_engine
from workers.engines.protocol import Engine
from workers.pipeline.run import PipelineOptions

__all__ = ["engine_from", "limits_from", "model_ref", "ocr_from", "options_from"]


def limits_from(settings: Settings) -> LimitsSpec:
    """Document limits from the one Settings class."""
    return LimitsSpec(
        max_bytes=settings.max_document_bytes,
        max_pages=settings.max_pages,
        max_chars=settings.max_chars,
        timeout_s=settings.parse_timeout_s,
        memory_mb=settings.parse_memory_mb,
        ocr=ocr_from(settings),
    )


def ocr_from(settings: Settings) -> OcrSpec | None:
    """The OCR settings, or None when OCR is turned off."""
    if not settings.ocr_enabled:
        return None
    return OcrSpec(
        engine=settings.ocr_engine,
        max_pages=settings.ocr_max_pages,
        timeout_s=settings.ocr_timeout_s,
        max_pixels=settings.ocr_max_pixels,
        min_confidence=settings.ocr_min_confidence,
        dpi=settings.ocr_dpi,
        memory_mb=settings.ocr_memory_mb,
        threads=settings.ocr_threads,
    )


def options_from(settings: Settings) -> PipelineOptions:
    """Pipeline budgets from the one Settings class."""
    return PipelineOptions(
        max_new_tokens=settings.max_new_tokens,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        max_generated_tokens=settings.job_max_generated_tokens,
        reject_ungrounded=settings.reject_ungrounded,
        calibration_dir=settings.calibration_dir,
        low_confidence_threshold=settings.low_confidence_threshold,
        schema_bounds=bounds_from(settings),
    )


def engine_from(settings: Settings) -> Engine:
    """The configured engine (loading a model takes a few seconds); the model cache folder is made 0700."""
    if settings.engine == "llamacpp":
        private_dir(settings.data_dir / "models")
    return build_engine(
        settings.engine,
        grammar_backend=settings.grammar_backend,
        model_path=settings.model_path,
        model_sha256=settings.model_sha256,
        cache_dir=settings.data_dir / "models",
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        flash_attn=settings.flash_attn,
        generation_timeout_s=settings.generation_timeout_s,
        grammar_index_max_gib=settings.grammar_index_max_gib,
        openai_base_url=settings.openai_base_url,
        openai_model=settings.openai_model,
        openai_api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        openai_max_retries=settings.openai_max_retries,
        openai_response_format=settings.openai_response_format,
        concurrency=settings.engine_concurrency,
        request_timeout_s=settings.request_timeout_s,
        vllm_model=settings.vllm_model,
        vllm_backend=settings.vllm_structured_backend,
        vllm_gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
        vllm_kv_cache_gib=settings.vllm_kv_cache_gib,
        vllm_enforce_eager=settings.vllm_enforce_eager,
        vllm_dtype=settings.vllm_dtype,
        vllm_max_model_len=settings.vllm_max_model_len,
    )
