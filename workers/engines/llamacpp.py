"""Local CPU engine: llama.cpp (llama-cpp-python) with a fast grammar mask applied as a logits processor.

llama.cpp's own GBNF sampler runs at ~2.6 tok/s on this model; a mask engine (llguidance by default)
applied through outlines' processors keeps nearly the unconstrained speed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workers.engines.constraints import GRAMMAR_BACKENDS, logits_processor_for, make_outlines_backend
from workers.engines.model_files import QWEN25_CODER_05B, ensure_embedded_model, verify_model_file
from workers.engines.protocol import EngineInfo, GenerationRequest, GenerationResult, TokenLogprob, token_spans
from workers.errors import ConfigError

log = logging.getLogger(__name__)


class _GuardedProcessor:
    """The grammar mask, run inside llama.cpp's sampler callback; records what the callback cannot raise.

    Exceptions raised there would be swallowed and let the model continue unconstrained, so any error
    fails the generation. Decoding is greedy (temperature 0, no penalties) right after this callback,
    so the token chosen at each step is the masked scores' argmax; its log-probability under the masked
    distribution is recorded here, where those scores exist.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.error: str | None = None
        self.chosen: list[tuple[int, float]] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.error is not None:
            return scores
        try:
            masked = scores if self.inner is None else self.inner(input_ids, scores)
            best = int(np.argmax(masked))
            top = float(masked[best])
            self.chosen.append((best, -float(np.log(np.sum(np.exp(masked - top))))))
            return masked
        except Exception as e:  # noqa: BLE001 - re-raised as a failed generation below
            self.error = f"{type(e).__name__}: {e}"
            return scores


class LlamaCppEngine:
    """One llama.cpp model in this process; requests run one after another (the model is not reentrant)."""

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        model_sha256: str | None = None,
        cache_dir: Path = Path("var/models"),
        grammar_backend: str = "llguidance",
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        if grammar_backend not in GRAMMAR_BACKENDS:
            raise ConfigError(f"unknown grammar backend {grammar_backend!r}; choose one of {GRAMMAR_BACKENDS}")
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ConfigError("llama-cpp-python is not installed", code="engine_missing") from e
        if model_path is None:
            path = ensure_embedded_model(cache_dir)
            digest = QWEN25_CODER_05B.sha256
            name = QWEN25_CODER_05B.name
        else:
            path = model_path
            digest = verify_model_file(path, model_sha256)
            name = path.stem
        started = time.perf_counter()
        # llama-cpp-python decodes on half the cores by default; a worker owns its machine, so use all.
        threads = n_threads or os.cpu_count() or 1
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            seed=seed,
            verbose=False,
            logits_all=False,
        )
        self._lock = threading.Lock()
        self._grammar_backend_name = grammar_backend
        self._backend: Any = None
        self._n_ctx = n_ctx
        self.info = EngineInfo(
            engine="llamacpp",
            model=name,
            model_sha256=digest,
            grammar_backend=grammar_backend,
            extra={"n_ctx": n_ctx, "n_threads": threads},
        )
        log.info("engine loaded", extra={"model": name, "seconds": round(time.perf_counter() - started, 2)})

    @property
    def context_tokens(self) -> int:
        """Context window the model was loaded with."""
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        """Exact token count with the model's own tokenizer."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _processor(self, schema: dict[str, Any]) -> _GuardedProcessor:
        if self._grammar_backend_name == "none":
            return _GuardedProcessor(None)
        if self._backend is None:
            import outlines

            with warnings.catch_warnings():
                # outlines reads the vocabulary through llama_token_get_attr, deprecated in llama-cpp-python:
                # one DeprecationWarning per token (151,936) would bury everything else a run prints.
                warnings.filterwarnings(
                    "ignore", message="llama_token_get_attr is deprecated", category=DeprecationWarning
                )
                self._backend = make_outlines_backend(
                    self._grammar_backend_name, outlines.from_llamacpp(self._llm, chat_mode=False)
                )
        return _GuardedProcessor(logits_processor_for(self._grammar_backend_name, self._backend, schema))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Greedy decoding, one request at a time; the shared prompt prefix stays in the KV cache."""
        return [self._generate_one(r) for r in requests]

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        from llama_cpp import LogitsProcessorList

        with self._lock:
            started = time.perf_counter()
            processor = self._processor(request.json_schema)
            compiled = time.perf_counter()
            messages: Any = [{"role": m.role, "content": m.content} for m in request.messages]
            out: Any = self._llm.create_chat_completion(
                messages=messages,
                max_tokens=request.max_tokens,
                temperature=0.0,
                logits_processor=LogitsProcessorList([processor]),
            )
            done = time.perf_counter()
            text = out["choices"][0]["message"].get("content") or ""
            tokens = self._spell(processor.chosen, text)
        choice = out["choices"][0]
        usage = out.get("usage", {})
        finish = choice.get("finish_reason") or "stop"
        error = processor.error
        return GenerationResult(
            text=text,
            finish_reason="error" if error else ("length" if finish == "length" else "stop"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=done - started,
            timings={"grammar_setup_s": compiled - started, "generate_s": done - compiled},
            error=error,
            tokens=tokens,
        )

    def _spell(self, chosen: list[tuple[int, float]], text: str) -> tuple[TokenLogprob, ...]:
        """The chosen tokens that spell `text` (the end-of-text token and anything after it dropped)."""
        pieces: list[bytes] = []
        logprobs: list[float] = []
        for token, logprob in chosen:
            piece = bytes(self._llm.detokenize([token], special=False))
            if not piece:
                break  # end of text (or another special token): nothing of the answer
            pieces.append(piece)
            logprobs.append(logprob)
        return token_spans(pieces, logprobs, text)
