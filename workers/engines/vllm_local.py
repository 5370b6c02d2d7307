"""In-process vLLM (`vllm.LLM`) for a worker that owns its GPU: every chunk it holds in one `generate` call.

Targets vLLM 0.33 (the structured-outputs API of vLLM >= 0.12: `SamplingParams(structured_outputs=
StructuredOutputsParams(json=...))`; the older `guided_*` fields are gone). vLLM is imported only when
an engine is built, so this module imports anywhere, GPU or not.

The parameters are built by pure functions (`llm_kwargs`, `structured_outputs_kwargs`,
`sampling_kwargs`) so what we ask of vLLM is testable without vLLM.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from workers.engines.protocol import EngineInfo, FinishReason, GenerationRequest, GenerationResult
from workers.errors import ConfigError, WorkerError

log = logging.getLogger(__name__)

VllmBackend = Literal["xgrammar", "guidance", "outlines"]
VLLM_BACKENDS: tuple[str, ...] = get_args(VllmBackend)
VLLM_VERSION_TARGET = "0.33"

_COMPACT_BACKENDS = frozenset({"xgrammar", "guidance"})
"""vLLM supports `disable_any_whitespace` only on these; outlines keeps its own bounded whitespace."""


def llm_kwargs(
    model: str,
    *,
    backend: str = "xgrammar",
    max_model_len: int = 4096,
    gpu_memory_utilization: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """Arguments of `vllm.LLM(...)`: the grammar backend is an engine setting, fixed (no silent fallback)."""
    if backend not in VLLM_BACKENDS:
        raise ConfigError(f"unknown vLLM structured-output backend {backend!r}; choose one of {VLLM_BACKENDS}")
    structured: dict[str, Any] = {"backend": backend, "disable_fallback": True}
    if backend in _COMPACT_BACKENDS:
        structured["disable_any_whitespace"] = True
    return {
        "model": model,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "seed": seed,
        # Every chunk of a schema shares the instructions prefix: compute it once.
        "enable_prefix_caching": True,
        "structured_outputs_config": structured,
    }


def structured_outputs_kwargs(schema: dict[str, Any], backend: str = "xgrammar") -> dict[str, Any]:
    """Arguments of `StructuredOutputsParams(...)`: the JSON Schema, compact JSON where supported."""
    return {"json": schema, "disable_any_whitespace": backend in _COMPACT_BACKENDS}


def sampling_kwargs(request: GenerationRequest, backend: str = "xgrammar") -> dict[str, Any]:
    """Arguments of `SamplingParams(...)` for one request: greedy, one answer, the schema enforced."""
    return {
        "n": 1,
        "temperature": 0.0,
        "max_tokens": request.max_tokens,
        "structured_outputs": structured_outputs_kwargs(request.json_schema, backend),
    }


def build_sampling_params(kwargs: dict[str, Any]) -> Any:
    """The real vLLM objects from `sampling_kwargs` output (imports vLLM)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    return SamplingParams(**{**kwargs, "structured_outputs": StructuredOutputsParams(**kwargs["structured_outputs"])})


def result_from_output(output: Any, seconds: float, *, batch_s: float | None = None) -> GenerationResult:
    """One vLLM `RequestOutput` as a result; a truncated or aborted answer carries no text."""
    completion = output.outputs[0]
    reason = completion.finish_reason
    finish: FinishReason = "stop" if reason == "stop" else "length" if reason == "length" else "error"
    return GenerationResult(
        text=completion.text if finish == "stop" else "",
        finish_reason=finish,
        prompt_tokens=len(output.prompt_token_ids or ()),
        completion_tokens=len(completion.token_ids or ()),
        seconds=seconds,
        timings={"batch_s": seconds if batch_s is None else batch_s},
        error=None if finish != "error" else f"vLLM finished with {reason!r}",
    )


class VllmEngine:
    """`vllm.LLM` in this process; `llm` and `make_params` exist for the contract test, not for callers."""

    def __init__(
        self,
        *,
        model: str,
        backend: str = "xgrammar",
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        llm: Any | None = None,
        make_params: Callable[[dict[str, Any]], Any] = build_sampling_params,
    ) -> None:
        kwargs = llm_kwargs(
            model,
            backend=backend,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
        )
        if llm is None:
            try:
                from vllm import LLM
            except ImportError as e:
                raise ConfigError(
                    "vllm is not installed; ABSTRACTOR_ENGINE=vllm needs a GPU image with vllm", code="engine_missing"
                ) from e
            started = time.perf_counter()
            llm = LLM(**kwargs)
            log.info("vLLM engine loaded", extra={"seconds": round(time.perf_counter() - started, 2)})
        self._llm = llm
        self._tokenizer = llm.get_tokenizer()
        self._backend = backend
        self._make_params = make_params
        self._max_model_len = max_model_len
        self.info = EngineInfo(
            engine="vllm",
            model=Path(model).name or model,
            model_sha256=None,
            grammar_backend=backend,
            extra={"max_model_len": max_model_len, "vllm_target": VLLM_VERSION_TARGET},
        )

    @property
    def context_tokens(self) -> int:
        """`max_model_len` the engine was started with."""
        return self._max_model_len

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's own tokenizer."""
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def render(self, request: GenerationRequest) -> str:
        """The prompt text: the request's turns through the model's chat template."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        prompt: str = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return prompt

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """All requests in one `LLM.generate` call: vLLM schedules them as one continuous batch."""
        if not requests:
            return []
        prompts = [self.render(r) for r in requests]
        params = [self._make_params(sampling_kwargs(r, self._backend)) for r in requests]
        started = time.perf_counter()
        outputs = self._llm.generate(prompts, sampling_params=params, use_tqdm=False)
        seconds = time.perf_counter() - started
        if len(outputs) != len(requests):
            raise WorkerError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts", code="engine_error")
        # The pipeline sums per-result seconds, so each result carries its share of the batch.
        return [result_from_output(o, seconds / len(outputs), batch_s=seconds) for o in outputs]
