"""Local CPU engine: llama.cpp (llama-cpp-python) with a fast grammar mask, in a greedy decode loop of its own.

llama.cpp's own GBNF sampler runs at ~2.6 tok/s on this model; a mask engine (llguidance by default)
keeps nearly the unconstrained speed. The loop is ours rather than `create_chat_completion`'s so that
the tokens the grammar forces (the JSON keys and separators between values, and the answer's opening)
go to the model as one batch instead of one decode step each: prompt-speed rather than decode-speed
tokens, and no forward pass at all after the closing brace.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workers.engines.constraints import (
    GRAMMAR_BACKENDS,
    GRAMMAR_INDEX_MAX_GIB,
    GrammarFailure,
    LLGuidanceMask,
    logits_processor_for,
    make_outlines_backend,
)
from workers.engines.grammar import GRAMMAR_TOO_LARGE, UnsupportedSchemaError
from workers.engines.model_files import QWEN25_CODER_05B, ensure_embedded_model, verify_model_file
from workers.engines.protocol import (
    GENERATION_STALLED,
    GRAMMAR_FAILED,
    EngineInfo,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    TokenLogprob,
    token_spans,
)
from workers.engines.quiet import quiet_llama_cpp
from workers.errors import BadInputError, ConfigError

log = logging.getLogger(__name__)


def available_cores() -> int:
    """The cores this process may run on (its affinity mask), not the machine's: under taskset, a cpuset
    or a pinned container `os.cpu_count()` overstates them, and llama.cpp's threads spin-wait on each
    other, so one thread too many on a busy core costs far more than one thread too few."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity masks on this platform (macOS): every core counts
        return os.cpu_count() or 1


def build_features() -> list[str]:
    """The instruction sets and options the loaded llama.cpp was compiled with (`AVX512 = 1 | ...` → `AVX512`),
    as llama.cpp reports them: what set-up's self-check and the build benchmark print."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    on = []
    for part in info.replace("CPU :", "|").split("|"):
        name, _, value = part.partition("=")
        if value.strip() == "1":
            on.append(name.strip())
    return on


class _GuardedProcessor:
    """The grammar mask for one generation, and the record of what it could not allow.

    Every failure is recorded here and ends the generation: from then on only the end-of-text token is
    chosen. A failure is the grammar engine's (`grammar_failed`, kept as its stop reason or exception
    type, never its text) or the generation's time budget running out (`generation_stalled`, checked
    before every token).

    Decoding is greedy: the token chosen at each step is the masked scores' argmax, and its
    log-probability under the masked distribution is recorded with it. Tokens the grammar forces
    (llguidance only) are recorded with log-probability 0: the mask left them all the mass.
    """

    def __init__(self, inner: Any, eos: int, deadline: float | None = None, *, fast_forward: bool = True) -> None:
        self.inner = inner
        self.eos = eos
        self.deadline = deadline
        self.failure: str | None = None
        self.reason: str = ""
        self.chosen: list[tuple[int, float]] = []
        self._stepwise = isinstance(inner, LLGuidanceMask)
        self._fast_forward = fast_forward and self._stepwise

    def choose(self, input_ids: Any, scores: Any) -> int:
        """The next token: the masked scores' argmax, or the end of text once anything failed."""
        if self.failure is None and self.deadline is not None and time.monotonic() > self.deadline:
            self.failure = GENERATION_STALLED
        if self.failure is not None:
            return self.eos
        try:
            if self.inner is None:
                masked = scores
            elif self._stepwise:
                masked = self.inner.mask(scores)
            else:  # outlines' processors read the previous choice back from the ids
                masked = self.inner(input_ids, scores)
            best = int(np.argmax(masked))
            top = float(masked[best])
            if top == -np.inf:
                raise GrammarFailure("NoExtension")
            self.chosen.append((best, -float(np.log(np.sum(np.exp(masked - top))))))
            return best
        except GrammarFailure as e:
            self.failure, self.reason = GRAMMAR_FAILED, e.reason
        except Exception as e:  # noqa: BLE001 - a failed generation, reported by `error`
            self.failure, self.reason = GRAMMAR_FAILED, type(e).__name__
        return self.eos

    def forced(self, token: int | None) -> list[int]:
        """Advance the grammar by `token` (None: at the start) and return the tokens it then forces.

        Only llguidance's matcher says which tokens are forced; other backends advance on their next
        `choose` and force nothing here, and so does llguidance with fast-forwarding off (benchmarks)."""
        if not self._stepwise or self.failure is not None:
            return []
        try:
            if token is not None:
                self.inner.consume(token)
            ahead = list(self.inner.fast_forward()) if self._fast_forward else []
        except GrammarFailure as e:
            self.failure, self.reason = GRAMMAR_FAILED, e.reason
            return []
        self.chosen.extend((t, 0.0) for t in ahead)
        return ahead

    def finished(self) -> bool:
        """The grammar is complete, so the next token can only be the end of text: no forward pass needed."""
        return self._fast_forward and self.failure is None and bool(self.inner.finished())

    def error(self, budget_s: float | None) -> str | None:
        """A fixed message for the failure (no text of the grammar engine's, nor of the document)."""
        if self.failure == GRAMMAR_FAILED:
            return f"the grammar engine failed during generation ({self.reason})"
        if self.failure == GENERATION_STALLED:
            return f"the generation ran past its time budget of {budget_s:g} s"
        return None


def _chat_template(llm: Any) -> Any:
    """The model file's own chat template as a formatter (what `create_chat_completion` renders)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ConfigError("the model file has no chat template (tokenizer.chat_template)", code="engine_config")
    model = llm._model  # llama-cpp-python's own model wrapper: it reads the special tokens' text
    eos, bos = int(llm.token_eos()), int(llm.token_bos())
    return Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
    )


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
        flash_attn: bool = True,
        fast_forward: bool = True,
        seed: int = 0,
        generation_timeout_s: float | None = None,
        grammar_index_max_gib: float = GRAMMAR_INDEX_MAX_GIB,
    ) -> None:
        if grammar_backend not in GRAMMAR_BACKENDS:
            raise ConfigError(f"unknown grammar backend {grammar_backend!r}; choose one of {GRAMMAR_BACKENDS}")
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ConfigError("llama-cpp-python is not installed", code="engine_missing") from e
        if generation_timeout_s is not None and generation_timeout_s <= 0:
            raise ConfigError("the generation time budget must be positive", code="engine_config")
        quiet_llama_cpp()  # before the model loads: llama.cpp logs from then on
        if model_path is None:
            path = ensure_embedded_model(cache_dir)
            digest = QWEN25_CODER_05B.sha256
            name = QWEN25_CODER_05B.name
        else:
            path = model_path
            digest = verify_model_file(path, model_sha256)
            name = path.stem
        started = time.perf_counter()
        # llama-cpp-python decodes on half the cores by default; a worker owns its cores, so use them all.
        threads = n_threads or available_cores()
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            # Flash attention: the excerpt attends to the cached prefix without materialising the score
            # matrix; prompt processing, which bounds this engine's seconds per page, gains about 15 %.
            flash_attn=flash_attn,
            seed=seed,
            verbose=False,
            logits_all=False,
        )
        self._template = _chat_template(self._llm)
        self._lock = threading.Lock()
        self._grammar_backend_name = grammar_backend
        self._backend: Any = None
        self._n_ctx = n_ctx
        self._eos = int(self._llm.token_eos())
        self._timeout_s = generation_timeout_s
        # outlines-core's indexes over the vocabulary take gigabytes: kept and refused within this budget.
        self._index_budget_bytes = int(grammar_index_max_gib * 2**30)
        # Off only to measure what it gains (bench.decode_speed): the answers are the same either way.
        self._fast_forward = fast_forward
        self.info = EngineInfo(
            engine="llamacpp",
            model=name,
            model_sha256=digest,
            grammar_backend=grammar_backend,
            extra={"n_ctx": n_ctx, "n_threads": threads, "flash_attn": flash_attn},
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
            return _GuardedProcessor(None, self._eos)
        if self._backend is None:
            import outlines

            # outlines reads the vocabulary through llama_token_get_attr (deprecated): its warnings are
            # filtered by `quiet_llama_cpp`, once for the process.
            self._backend = make_outlines_backend(
                self._grammar_backend_name,
                outlines.from_llamacpp(self._llm, chat_mode=False),
                vocab_size=int(self._llm.n_vocab()),
                index_budget_bytes=self._index_budget_bytes,
            )
        try:
            inner = logits_processor_for(self._grammar_backend_name, self._backend, schema)
        except UnsupportedSchemaError as e:
            if e.code == GRAMMAR_TOO_LARGE:
                raise  # our own refusal: sizes and the setting to change, no schema text
            # The backend's reason may quote the schema: the job keeps the code and the backend's name.
            raise UnsupportedSchemaError(
                "the grammar backend cannot compile the job's schema",
                details={"grammar_backend": self._grammar_backend_name},
            ) from None
        return _GuardedProcessor(inner, self._eos, fast_forward=self._fast_forward)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Greedy decoding, one request at a time; the shared prompt prefix stays in the KV cache."""
        return [self._generate_one(r) for r in requests]

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's turns through the model's own chat template, as the token ids the model reads."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        text = self._template(messages=messages).prompt
        ids: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        prompt = self.prompt_ids(request)
        if len(prompt) + request.max_tokens > self._n_ctx:
            raise BadInputError(
                f"prompt of {len(prompt)} tokens plus {request.max_tokens} to generate exceeds the "
                f"{self._n_ctx}-token context",
                code="prompt_too_long",
            )
        with self._lock:
            started = time.perf_counter()
            try:
                processor = self._processor(request.json_schema)
            except GrammarFailure as e:
                failed = _GuardedProcessor(None, self._eos)
                failed.failure, failed.reason = GRAMMAR_FAILED, e.reason
                return self._failed(failed, time.perf_counter() - started)
            compiled = time.perf_counter()
            # The budget counts from here: the prompt's evaluation and every token, checked before each one.
            processor.deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
            generated, finish, passes = self._decode(prompt, processor, request.max_tokens)
            done = time.perf_counter()
        text = bytes(self._llm.detokenize(generated, special=False)).decode("utf-8", errors="ignore")
        tokens = self._spell(processor.chosen, text)
        timings = {"grammar_setup_s": compiled - started, "generate_s": done - compiled, "forward_passes": passes}
        usage = {"prompt_tokens": len(prompt), "completion_tokens": len(generated)}
        if processor.failure is not None:
            return self._failed(processor, done - started, usage, timings)
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=len(generated),
            seconds=done - started,
            timings=timings,
            tokens=tokens,
        )

    def _decode(
        self, prompt: list[int], processor: _GuardedProcessor, max_tokens: int
    ) -> tuple[list[int], FinishReason, int]:
        """Greedy decoding of `prompt`'s answer: the generated ids (the end of text not among them), why
        it stopped ("stop" or "length") and how many forward passes (evaluations) it took.

        The KV cache keeps what the last request left: only the part of `prompt` after the longest
        shared prefix is evaluated (the instructions, schema and example every chunk shares stay). The
        tokens the grammar forces ride along with the evaluation that precedes them."""
        from llama_cpp import llama_vocab_is_eog

        llm = self._llm
        cached = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt)
        llm.n_tokens = min(cached, len(prompt) - 1)  # at least one token is evaluated, for its logits
        generated = processor.forced(None)[:max_tokens]
        pending = [*prompt[llm.n_tokens :], *generated]
        vocab = llm._model.vocab  # the end-of-generation test needs the model's vocabulary (no public accessor)
        passes = 0
        while len(generated) < max_tokens and not processor.finished():
            llm.eval(pending)
            passes += 1
            # The last evaluated token's logits (llama-cpp-python keeps none itself without logits_all).
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
            token = processor.choose(llm.input_ids[: llm.n_tokens], logits)
            if llama_vocab_is_eog(vocab, token):
                return generated, "stop", passes
            ahead = processor.forced(token)
            pending = [token, *ahead][: max_tokens - len(generated)]
            generated.extend(pending)
        return generated, "stop" if processor.finished() else "length", passes

    def _failed(
        self,
        processor: _GuardedProcessor,
        seconds: float,
        usage: dict[str, int] | None = None,
        timings: dict[str, float] | None = None,
    ) -> GenerationResult:
        """A failed generation: no text (a partial answer is nothing), the failure's code and fixed message."""
        usage = usage or {}
        return GenerationResult(
            text="",
            finish_reason="error",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            timings=timings or {},
            error=processor.error(self._timeout_s),
            error_code=processor.failure,
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
