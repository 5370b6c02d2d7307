"""In-process vLLM for a worker that owns its accelerator: every job's chunks in one continuous batch.

vLLM's `AsyncLLM` (the engine `vllm serve` runs) lives on this engine's own event loop
(`BackgroundLoop`), so a worker running many jobs at once (one thread each) feeds one engine: vLLM
schedules every in-flight request of every job together, as it would behind `vllm serve`. The plain
`vllm.LLM` class would serve one caller at a time.

Targets the release in `workers.engines.vllm_release` (structured outputs through
`StructuredOutputsParams(json=...)`; the backend is fixed for the engine, never chosen per request).
vLLM is imported only when an engine is built, so this module imports anywhere. vLLM starts its
engine core in a child process; the process that builds a `VllmEngine` must therefore be a main
program (a `__main__` guard, a Celery worker with the threads pool), not a daemonic pool process.

Prompts are rendered with the model's chat template and sent as token ids, so the prompt vLLM runs
is exactly the one counted here; a request over the context window is refused before vLLM sees it
(a malformed request can take vLLM's whole engine down, and every other job with it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.engines.event_loop import BackgroundLoop
from workers.engines.protocol import (
    EngineInfo,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    TokenLogprob,
    token_spans,
)
from workers.engines.quiet import quiet_vllm
from workers.engines.vllm_release import LOGPROBS_MODE, VLLM_BACKENDS, VLLM_VERSION, structured_outputs_config
from workers.errors import BadInputError, ConfigError, TransientError

log = logging.getLogger(__name__)

_GIB = 1 << 30


def engine_args(
    model: str,
    *,
    backend: str = "xgrammar",
    max_model_len: int = 4096,
    gpu_memory_utilization: float = 0.9,
    kv_cache_gib: float | None = None,
    enforce_eager: bool = False,
    dtype: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Arguments of `AsyncEngineArgs(...)`.

    `kv_cache_gib` sizes the KV cache outright (on CPUs vLLM's default memory fraction of the whole
    machine refuses to start beside anything else); without it the GPU memory fraction decides.
    `enforce_eager` skips graph capture and compilation: a start in seconds rather than minutes,
    for CPUs and tests; production GPUs leave it off.
    """
    if backend not in VLLM_BACKENDS:
        raise ConfigError(f"unknown vLLM structured-output backend {backend!r}; choose one of {VLLM_BACKENDS}")
    if kv_cache_gib is not None and kv_cache_gib <= 0:
        raise ConfigError("the vLLM KV cache size must be positive", code="engine_config")
    args: dict[str, Any] = {
        "model": model,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "enforce_eager": enforce_eager,
        "dtype": dtype,
        "seed": seed,
        # Every chunk of a schema shares the instructions prefix: compute it once.
        "enable_prefix_caching": True,
        # Sampling defaults shipped with the weights would change greedy answers (see vllm_release).
        "generation_config": "vllm",
        "structured_outputs_config": structured_outputs_config(backend),
        # Log-probabilities of the chosen tokens after the grammar mask and any logits processing.
        "logprobs_mode": LOGPROBS_MODE,
        "disable_log_stats": True,
    }
    if kv_cache_gib is not None:
        args["kv_cache_memory_bytes"] = int(kv_cache_gib * _GIB)
    return args


def sampling_params(request: GenerationRequest, backend: str) -> Any:
    """`SamplingParams` for one request: greedy, one answer, the request's schema enforced (imports vLLM)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    compact = structured_outputs_config(backend).get("disable_any_whitespace") is True
    return SamplingParams(
        n=1,
        temperature=0.0,
        max_tokens=request.max_tokens,
        logprobs=0,  # the chosen token's own log-probability, no alternatives
        structured_outputs=StructuredOutputsParams(json=request.json_schema, disable_any_whitespace=compact),
    )


def _tokens(completion: Any, tokenizer: Any, text: str) -> tuple[TokenLogprob, ...]:
    """Spans and log-probabilities of the answer's tokens (vLLM gives ids and a logprob per position)."""
    ids = list(completion.token_ids or ())
    entries = completion.logprobs or []
    if not ids or len(entries) != len(ids):
        return ()
    pieces = [bytes(tokenizer.convert_tokens_to_string([t]), "utf-8") for t in tokenizer.convert_ids_to_tokens(ids)]
    values = [float(entry[token].logprob) for entry, token in zip(entries, ids, strict=True)]
    return token_spans(pieces, values, text)


def result_from_output(output: Any, seconds: float, tokenizer: Any = None) -> GenerationResult:
    """One finished vLLM `RequestOutput` as a result; a truncated or aborted answer carries no text."""
    completion = output.outputs[0]
    reason = completion.finish_reason
    finish: FinishReason = "stop" if reason == "stop" else "length" if reason == "length" else "error"
    text = completion.text if finish == "stop" else ""
    return GenerationResult(
        text=text,
        finish_reason=finish,
        prompt_tokens=len(output.prompt_token_ids or ()),
        completion_tokens=len(completion.token_ids or ()),
        seconds=seconds,
        timings={"request_s": seconds},
        error=None if finish != "error" else _finish_error(reason),
        tokens=_tokens(completion, tokenizer, text) if tokenizer is not None and text else (),
    )


def _finish_error(reason: object) -> str:
    if reason == "abort":
        # vLLM aborts a structured request whose grammar its backend cannot compile or follow; the
        # request's own answer says nothing, and vLLM's log, which would, is silenced (`quiet_vllm`).
        return "vLLM aborted the request: its grammar backend could not compile or follow the schema"
    return f"vLLM finished with {reason!r}"


class VllmEngine:
    """`AsyncLLM` in this process, shared by every thread that calls `generate`."""

    def __init__(
        self,
        *,
        model: str,
        backend: str = "xgrammar",
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.9,
        kv_cache_gib: float | None = None,
        enforce_eager: bool = False,
        dtype: str = "auto",
        seed: int = 0,
        request_timeout_s: float = 600.0,
    ) -> None:
        kwargs = engine_args(
            model,
            backend=backend,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_gib=kv_cache_gib,
            enforce_eager=enforce_eager,
            dtype=dtype,
            seed=seed,
        )
        quiet_vllm()  # before vLLM is imported: it configures its logging (and its engine core's) on import
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:
            raise ConfigError(
                "vllm is not installed; ABSTRACTOR_ENGINE=vllm needs an image or environment with vLLM "
                f"{VLLM_VERSION} (scripts/setup-vllm builds one on CPU)",
                code="engine_missing",
            ) from e
        if os.environ.get("VLLM_WORKER_MULTIPROC_METHOD") is None:
            # fork after threads have started (ours, Celery's) can deadlock the child: vLLM must spawn.
            os.environ["VLLM_WORKER_MULTIPROC_METHOD"] = "spawn"
        self._loop = BackgroundLoop("vllm-engine")
        started = time.perf_counter()
        try:
            self._llm = self._loop.call(AsyncLLM.from_engine_args, AsyncEngineArgs(**kwargs))
        except Exception as e:
            self._loop.close()
            raise ConfigError(
                f"vLLM could not start ({type(e).__name__}); see the engine's own log", code="engine_start_failed"
            ) from e
        log.info("vLLM engine loaded", extra={"seconds": round(time.perf_counter() - started, 2)})
        self._tokenizer = self._llm.get_tokenizer()
        self._backend = backend
        self._max_model_len = max_model_len
        self._timeout_s = request_timeout_s
        self._ids = itertools.count()
        self._close_lock = threading.Lock()
        self.info = EngineInfo(
            engine="vllm",
            model=Path(model).name or model,
            model_sha256=None,
            grammar_backend=backend,
            extra={"max_model_len": max_model_len, "vllm": VLLM_VERSION},
        )

    @property
    def context_tokens(self) -> int:
        """`max_model_len` the engine was started with."""
        return self._max_model_len

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's own tokenizer."""
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's turns through the model's chat template, as the token ids vLLM will run."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        text: str = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False)
        return ids

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """All requests at once; vLLM batches them with whatever other threads have in flight."""
        if not requests:
            return []
        prompts = [self.prompt_ids(r) for r in requests]
        for request, ids in zip(requests, prompts, strict=True):
            if len(ids) + request.max_tokens > self._max_model_len:
                raise BadInputError(
                    f"prompt of {len(ids)} tokens plus {request.max_tokens} to generate exceeds the "
                    f"{self._max_model_len}-token context",
                    code="prompt_too_long",
                )
        pairs = list(zip(requests, prompts, strict=True))

        async def every() -> list[GenerationResult]:
            return list(await asyncio.gather(*(self._one(r, ids) for r, ids in pairs)))

        results: list[GenerationResult] = self._loop.run(every())
        return results

    async def _one(self, request: GenerationRequest, prompt_ids: list[int]) -> GenerationResult:
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError

        # vLLM wants ids unique across every request it holds; ours repeat across retries and jobs.
        request_id = f"{request.request_id or 'req'}#{next(self._ids)}"
        params = sampling_params(request, self._backend)
        started = time.perf_counter()
        final: Any = None
        try:
            async with asyncio.timeout(self._timeout_s):
                async for output in self._llm.generate(TokensPrompt(prompt_token_ids=prompt_ids), params, request_id):
                    final = output
        except TimeoutError as e:
            await self._llm.abort(request_id)
            raise TransientError(f"vLLM gave no answer within {self._timeout_s:g} s", code="engine_timeout") from e
        except EngineDeadError as e:
            raise TransientError("the vLLM engine died; the worker must restart", code="engine_dead") from e
        if final is None or not final.finished:
            raise TransientError("vLLM ended the request without an answer", code="engine_error")
        return result_from_output(final, time.perf_counter() - started, self._tokenizer)

    def close(self) -> None:
        """Shut vLLM's engine core down and stop the loop."""
        with self._close_lock:
            llm, self._llm = self._llm, None
        if llm is None:
            return
        llm.shutdown()
        self._loop.close()
