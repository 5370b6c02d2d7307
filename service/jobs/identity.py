"""What keys a job besides its tenant, document and schema: the (model, backend) pair that produces it.

A job is deduplicated on (tenant, document, schema, model), and its row records the backend too. The
pair comes from a built engine (`engine_ref`) when a process has one in hand (tests inject one; the
embedded worker and the CLI batch may), and from the settings otherwise (`model_ref`): the API process
never builds an engine, so it predicts what the settings would build. Both must agree for one engine,
or resume and dedupe would miss every finished job; `tests/service/jobs/test_identity.py` holds them to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol

from service.config import Settings


class ModelRef(NamedTuple):
    """The model name jobs are keyed by, and the backend that runs it (`<engine>+<grammar backend>`)."""

    model: str
    backend: str


class EngineInfoLike(Protocol):
    """The fields of `workers.engines.protocol.EngineInfo` the key is made of (the API never imports engines)."""

    @property
    def engine(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def grammar_backend(self) -> str: ...


def engine_ref(info: EngineInfoLike) -> ModelRef:
    """The key of the engine that `info` describes."""
    return ModelRef(info.model, f"{info.engine}+{info.grammar_backend}")


def model_ref(settings: Settings) -> ModelRef:
    """The key of the engine these settings build, without building it (loading a model takes seconds).

    Must equal `engine_ref(engine.info)` of that engine.
    """
    if settings.engine == "openai":
        return ModelRef(settings.openai_model, "openai+server")
    if settings.engine == "vllm":
        model = Path(settings.vllm_model or "").name or (settings.vllm_model or "")
        return ModelRef(model, f"vllm+{settings.vllm_structured_backend}")
    if settings.model_path is not None:
        model = settings.model_path.stem
    else:
        # The shipped model's name, from its one definition: plain data (no engine code), imported here
        # rather than at the top so that importing the API loads nothing of `workers.engines`.
        from workers.engines.model_files import QWEN25_CODER_05B

        model = QWEN25_CODER_05B.name
    return ModelRef(model, f"{settings.engine}+{settings.grammar_backend}")
