"""Failures no retry can mend (a broken grammar, a stalled generation) and the job's token budget, with a
scripted engine behind the real protocol: the orchestration only."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest

from schemas.registry import get_schema
from tests.workers.pipeline.test_run import GOOD, document
from workers.engines.protocol import EngineInfo, GenerationRequest, GenerationResult
from workers.pipeline.run import PipelineOptions, extract_document
from workers.pipeline.validation import OutputError

Answer = Callable[[GenerationRequest], GenerationResult]


class _Engine:
    """Answers each request with `answer(request)`; records what it was asked."""

    def __init__(self, answer: Answer, context: int = 4096) -> None:
        self.answer = answer
        self.requests: list[GenerationRequest] = []
        self.info = EngineInfo("scripted", "scripted", None, "none")
        self._context = context

    @property
    def context_tokens(self) -> int:
        return self._context

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.requests.extend(requests)
        return [self.answer(r) for r in requests]


def _failed(code: str) -> Answer:
    return lambda r: GenerationResult("", "error", 100, 3, 0.01, error="fixed words", error_code=code)


def _good(tokens: int = 20) -> Answer:
    return lambda r: GenerationResult(GOOD, "stop", 100, tokens, 0.01)


def _babble(r: GenerationRequest) -> GenerationResult:
    return GenerationResult('{"parties":["' + "na " * r.max_tokens, "length", 100, r.max_tokens, 0.01)


@pytest.mark.parametrize("code", ["grammar_failed", "generation_stalled"])
def test_an_engine_named_failure_fails_at_once_with_its_code(code: str) -> None:
    engine = _Engine(_failed(code))
    with pytest.raises(OutputError) as info:
        extract_document(document(), get_schema("nda"), engine)
    assert info.value.code == code
    assert len(engine.requests) == 1  # not retried: it would fail again, and as slowly


def test_an_unnamed_engine_failure_is_still_a_generation_error_and_is_retried() -> None:
    engine = _Engine(lambda r: GenerationResult("", "error", 100, 0, 0.01, error="boom", error_code="made_up"))
    with pytest.raises(OutputError) as info:
        extract_document(document(), get_schema("nda"), engine)
    assert info.value.code == "generation_error" and len(engine.requests) == 2


def test_a_generation_that_never_ends_is_cut_by_the_jobs_token_budget() -> None:
    engine = _Engine(_babble)
    options = PipelineOptions(max_new_tokens=384, max_generated_tokens=100)
    with pytest.raises(OutputError) as info:
        extract_document(document(), get_schema("nda"), engine, options)
    assert info.value.code == "generation_stalled"
    assert [r.max_tokens for r in engine.requests] == [100]  # capped at what the budget had left, not retried


def test_the_budget_spans_chunks_and_retries() -> None:
    long_text = " ".join([document().text] * 40)
    calls: list[int] = []

    def answer(r: GenerationRequest) -> GenerationResult:
        calls.append(r.max_tokens)
        return GenerationResult(GOOD, "stop", 100, 60, 0.01)

    engine = _Engine(answer, context=1400)
    options = PipelineOptions(max_new_tokens=128, max_generated_tokens=150)
    with pytest.raises(OutputError) as info:
        extract_document(document(long_text, pages=4), get_schema("nda"), engine, options, progress=lambda *a: None)
    assert info.value.code == "generation_stalled"
    assert calls == [128, 90, 30]  # what was left after each chunk: 150, 90, 30; then nothing


def test_an_engine_writing_past_its_limit_still_counts_against_the_budget() -> None:
    engine = _Engine(_good(tokens=500))
    with pytest.raises(OutputError) as info:
        extract_document(document(), get_schema("nda"), engine, PipelineOptions(max_generated_tokens=400))
    assert info.value.code == "generation_stalled"


def test_a_budget_large_enough_changes_nothing() -> None:
    engine = _Engine(_good())
    record = extract_document(document(), get_schema("nda"), engine, PipelineOptions(max_generated_tokens=10_000))
    assert record["data"] == json.loads(GOOD) and [r.max_tokens for r in engine.requests] == [384]
