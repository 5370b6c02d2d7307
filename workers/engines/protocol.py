"""The one engine protocol every backend implements: many requests in, one result per request out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "error"]

GRAMMAR_FAILED = "grammar_failed"
"""The grammar engine broke down mid-generation (e.g. llguidance's lexer limit): the schema's fault, not
the model's, and it would fail again."""

GENERATION_STALLED = "generation_stalled"
"""A generation, or a job's generations together, ran past a budget (time or tokens)."""

STOPPED_CODES = frozenset({GRAMMAR_FAILED, GENERATION_STALLED})
"""Failures an engine names itself (`GenerationResult.error_code`); retrying the request cannot mend them."""


@dataclass(frozen=True)
class Message:
    """One chat turn; engines render these with the model's own chat template."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """A prompt plus the JSON Schema its answer must match (enforced by the grammar backend)."""

    messages: tuple[Message, ...]
    json_schema: dict[str, Any]
    max_tokens: int = 384
    request_id: str = ""


@dataclass(frozen=True)
class GenerationResult:
    """What came back for one request; `finish_reason == "length"` means the JSON is truncated."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    tokens: tuple[TokenLogprob, ...] = ()
    """The generated tokens that spell `text`, in order, each with its log-probability under the
    constrained (grammar-masked) distribution it was chosen from; empty when the engine gave none."""
    error_code: str | None = None
    """Why a `finish_reason == "error"` result failed, when the engine knows: `grammar_failed` (the grammar
    engine broke down mid-generation) or `generation_stalled` (the generation ran past its time budget);
    None for other failures (`generation_error`). `error` is then a fixed message, never engine text."""


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: `text[start:end]` is what it spells (character offsets into the answer)."""

    start: int
    end: int
    logprob: float


def token_spans(pieces: Sequence[bytes], logprobs: Sequence[float], text: str) -> tuple[TokenLogprob, ...]:
    """Character spans in `text` of the tokens that spelled it, each with its log-probability.

    Exact bytes (llama.cpp) tile the text directly; a token ending inside a multi-byte character ends
    where that character does. Servers that send each token decoded on its own (vLLM) turn a split
    character into replacement marks; those tokens are matched against the text instead, each taking
    what it visibly spells, so every span still lies on the answer and spans never overlap.
    """
    values = [float(v) for v in logprobs]
    if len(values) != len(pieces):
        return ()
    if b"".join(pieces).decode("utf-8", errors="replace") == text:
        out: list[TokenLogprob] = []
        data = b""
        begin = 0
        for piece, value in zip(pieces, values, strict=True):
            data += piece
            stop = len(data.decode("utf-8", errors="ignore"))
            out.append(TokenLogprob(begin, stop, value))
            begin = stop
        return tuple(out)
    matched: list[TokenLogprob] = []
    pos = 0
    for piece, value in zip(pieces, values, strict=True):
        visible = piece.decode("utf-8", errors="replace").replace("\ufffd", "")
        found = text.find(visible, pos, pos + len(visible) + 4) if visible else pos
        if found < 0:
            return tuple(matched)  # lost the thread: keep what is certain
        stop = found + len(visible)
        matched.append(TokenLogprob(pos, stop, value))
        pos = stop
    return tuple(matched)


@dataclass(frozen=True)
class EngineInfo:
    """Identifies what produced a record (stored with every result)."""

    engine: str
    model: str
    model_sha256: str | None
    grammar_backend: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain form for the record's `model` block."""
        out: dict[str, Any] = {
            "engine": self.engine,
            "model": self.model,
            "sha256": self.model_sha256,
            "grammar_backend": self.grammar_backend,
        }
        out.update(self.extra)
        return out


@runtime_checkable
class Engine(Protocol):
    """Any backend: local llama.cpp, an OpenAI-compatible server, or in-process vLLM."""

    info: EngineInfo

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Run every request (an engine may batch them) and return results in the same order."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs in this engine's model (used to budget chunks)."""
        ...

    @property
    def context_tokens(self) -> int:
        """The model context window the engine was started with."""
        ...
