"""The OpenAI-compatible engine against a real `vllm serve` (the CPU build of the pinned release).

The production path: workers talk to vLLM over HTTP. Each structured-output backend serves a real
Kleister-NDA extraction; the xgrammar server (shared with the end-to-end test) also meets a too-small
token budget, schemas its grammar backend refuses or cannot compile, and many requests at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.vllm_cpu import VllmServer
from schemas.registry import get_schema
from tests.support.vllm import assert_valid_nda, require_vllm, sample_pdf
from workers.documents import read_document
from workers.engines.openai_compat import OpenAICompatEngine
from workers.engines.protocol import GenerationRequest, Message
from workers.engines.vllm_release import SERVED_MODEL_NAME
from workers.errors import BadInputError
from workers.pipeline.run import PipelineOptions, extract_document
from workers.pipeline.validation import OutputError

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def guidance_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """A second server with the guidance backend (started for this module only)."""
    env = require_vllm()
    with VllmServer(env, backend="guidance", log_path=tmp_path_factory.mktemp("vllm-guidance") / "log") as server:
        yield server


def engine_for(server: VllmServer, **kwargs: Any) -> OpenAICompatEngine:
    return OpenAICompatEngine(base_url=server.base_url, model=SERVED_MODEL_NAME, timeout_s=3600.0, **kwargs)


def _extract(server: VllmServer, kleister_dir: Path, **options: Any) -> tuple[dict[str, Any], Any]:
    doc = read_document(sample_pdf(kleister_dir))
    engine = engine_for(server)
    try:
        return extract_document(doc, get_schema("nda"), engine, PipelineOptions(**options)), doc
    finally:
        engine.close()


def _pages(doc: Any) -> dict[int, tuple[int, int]]:
    return {p.number: (p.start, p.end) for p in doc.pages}


def test_xgrammar_server_extracts_a_grounded_nda(vllm_server: VllmServer, kleister_dir: Path) -> None:
    record, doc = _extract(vllm_server, kleister_dir)
    assert_valid_nda(record, doc.text, _pages(doc))
    assert record["model"]["engine"] == "openai"
    print(f"vllm serve xgrammar: {record['timings']}")


def test_guidance_server_extracts_a_grounded_nda(guidance_server: VllmServer, kleister_dir: Path) -> None:
    record, doc = _extract(guidance_server, kleister_dir)
    assert_valid_nda(record, doc.text, _pages(doc))
    print(f"vllm serve guidance: {record['timings']}")


def test_server_context_and_tokens_come_from_the_server(vllm_server: VllmServer) -> None:
    engine = engine_for(vllm_server)
    try:
        assert engine.context_tokens == 4096  # the server's max_model_len, not our default
        assert engine.count_tokens("hello world") == 2  # vLLM's /tokenize with the model's tokenizer
    finally:
        engine.close()


def test_a_too_small_budget_ends_in_output_truncated(vllm_server: VllmServer, kleister_dir: Path) -> None:
    with pytest.raises(OutputError) as info:
        _extract(vllm_server, kleister_dir, max_new_tokens=4)
    assert info.value.code == "output_truncated"


def _request(schema: dict[str, Any]) -> GenerationRequest:
    return GenerationRequest(
        messages=(Message("system", "Answer with JSON."), Message("user", "Say a.")),
        json_schema=schema,
        max_tokens=16,
        request_id="bad-schema",
    )


def _string_schema(pattern: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"v": {"type": "string", "pattern": pattern}}, "required": ["v"]}


def test_schemas_vllm_refuses_or_cannot_compile_end_in_clear_errors(vllm_server: VllmServer) -> None:
    engine = engine_for(vllm_server, max_retries=1, backoff_s=0.1)
    try:
        # Refused while vLLM validates the request (xgrammar has no Unicode classes): a 400, never retried.
        with pytest.raises(BadInputError) as refused:
            engine.generate([_request(_string_schema("^\\p{L}+$"))])
        assert refused.value.code == "engine_rejected"
        # Accepted, then the grammar compiler fails inside the engine: vLLM answers 500 every time while
        # its health check passes; the job fails now instead of being requeued again and again.
        with pytest.raises(BadInputError) as failed:
            engine.generate([_request(_string_schema("^(a|aa){1000,}b$"))])
        assert failed.value.code == "engine_request_failed"
        # The server lives on: the next request is answered.
        ok = engine.generate([_request({"type": "object", "properties": {"v": {"const": "a"}}, "required": ["v"]})])
        assert ok[0].finish_reason == "stop" and ok[0].text == '{"v":"a"}'
        # Every token that spelled the answer, with its log-probability under the grammar mask. The schema
        # fixes the value, but not the spelling: the grammar still allows whitespace between tokens and
        # other tokenizations of the same characters, so single tokens may be far from certain (-0.46 was
        # seen); the answer as a whole stays likely, which raw, unmasked scores of a forced text are not.
        tokens = ok[0].tokens
        assert "".join(ok[0].text[t.start : t.end] for t in tokens) == ok[0].text
        assert all(-100.0 < t.logprob <= 0.0 for t in tokens)
        assert sum(t.logprob for t in tokens) > -3.0
    finally:
        engine.close()
