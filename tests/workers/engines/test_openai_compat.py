"""The OpenAI-compatible engine against real HTTP servers on loopback.

Fault handling (500s, a hung server, 4xx, refused connections, concurrency) uses a small stdlib
server that misbehaves on purpose; extraction, truncation and token counting use llama-cpp-python's
own OpenAI-compatible server over the embedded model (marked `model`).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from schemas.registry import get_schema
from service.config import Settings
from service.runtime import engine_from, model_ref
from tests.support.servers import free_port
from tests.workers.engines.llama_server import SERVED_MODEL, FaultyServer, LlamaServer, completion_body
from workers.documents.model import Document, Page
from workers.engines.factory import build_engine
from workers.engines.openai_compat import OpenAICompatEngine
from workers.engines.openai_wire import chat_payload, error_detail, parse_completion
from workers.engines.protocol import GenerationRequest, Message
from workers.errors import BadInputError, ConfigError, TransientError
from workers.pipeline.run import PipelineOptions, extract_document
from workers.pipeline.validation import OutputError

AGE_SCHEMA: dict[str, Any] = {
    "title": "Age record",
    "type": "object",
    "properties": {"age": {"type": "integer"}},
    "required": ["age"],
    "additionalProperties": False,
}
SECRET = "Zebulon Quackenbush"  # a "patient name": must never show up in an error message
NDA_TEXT = (
    "This Confidentiality Agreement is made as of April 18, 2001 between NIKE, Inc. and Eric Dean Sprunk. "
    "This Agreement shall be governed by the laws of the State of Oregon."
)


def document(text: str = NDA_TEXT) -> Document:
    return Document(text, (Page(1, 0, len(text)),), "text/plain", hashlib.sha256(text.encode()).hexdigest(), len(text))


def request(text: str = "Extract the age.", max_tokens: int = 16, rid: str = "doc:0") -> GenerationRequest:
    return GenerationRequest(
        messages=(Message("system", "Answer with JSON."), Message("user", text)),
        json_schema=AGE_SCHEMA,
        max_tokens=max_tokens,
        request_id=rid,
    )


def engine_for(server: FaultyServer, **kwargs: Any) -> OpenAICompatEngine:
    options: dict[str, Any] = {"timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.05, "concurrency": 4}
    options.update(kwargs)
    return OpenAICompatEngine(base_url=server.base_url, model=SERVED_MODEL, **options)


# --- what goes over the wire ---------------------------------------------------------------------------


def test_payload_asks_for_greedy_strict_json_schema_without_free_whitespace() -> None:
    body = chat_payload(request(max_tokens=77), "served-name")
    assert body["model"] == "served-name"
    assert (body["temperature"], body["n"], body["max_tokens"], body["stream"]) == (0.0, 1, 77, False)
    assert body["messages"] == [
        {"role": "system", "content": "Answer with JSON."},
        {"role": "user", "content": "Extract the age."},
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Age_record", "schema": AGE_SCHEMA, "strict": True},
    }
    assert body["structured_outputs"] == {"json": AGE_SCHEMA, "disable_any_whitespace": True}
    json.dumps(body)  # plain JSON all the way down


def test_llama_cpp_style_response_format_carries_the_schema() -> None:
    body = chat_payload(request(), "m", style="json_object", disable_any_whitespace=False)
    assert body["response_format"] == {"type": "json_object", "schema": AGE_SCHEMA}
    assert "structured_outputs" not in body


@pytest.mark.parametrize(
    ("body", "finish", "text"),
    [
        (completion_body('{"age":61}'), "stop", '{"age":61}'),
        (completion_body('{"age":6', finish_reason="length"), "length", ""),
        (completion_body('{"age":61}', finish_reason="abort"), "error", ""),
        (completion_body(None), "error", ""),
        ({"choices": []}, "error", ""),
        ("not an object", "error", ""),
    ],
    ids=["stop", "length-drops-partial-text", "abort", "no-content", "no-choices", "not-an-object"],
)
def test_only_a_finished_answer_carries_text(body: Any, finish: str, text: str) -> None:
    result = parse_completion(body, 0.5)
    assert (result.finish_reason, result.text) == (finish, text)
    assert (result.error is None) == (finish != "error")


def test_error_detail_keeps_no_rejected_input() -> None:
    import httpx

    echoed = httpx.Response(
        422, json={"detail": [{"loc": ["body", "messages", 0], "msg": "bad role", "input": {"content": SECRET}}]}
    )
    assert error_detail(echoed) == "body.messages.0: bad role"
    pydantic_style = httpx.Response(
        400, json={"error": {"message": f"1 validation error [type=x, input_value='{SECRET}', input_type=str]"}}
    )
    assert SECRET not in error_detail(pydantic_style)


# --- faults: retried, then a clear error, within the deadline ------------------------------------------


def test_a_500_is_retried_then_raises_transient_error_within_the_deadline() -> None:
    with FaultyServer(lambda s, body, n: (500, {"error": {"message": "CUDA out of memory"}}, 0.0)) as server:
        engine = engine_for(server, max_retries=2, backoff_s=0.1)
        started = time.perf_counter()
        with pytest.raises(TransientError) as info:
            engine.generate([request(SECRET)])
        elapsed = time.perf_counter() - started
    assert server.hits == 3  # one try and two retries, no more
    assert info.value.code == "engine_unavailable"
    assert "HTTP 500" in info.value.message and "CUDA out of memory" in info.value.message
    assert SECRET not in info.value.message
    assert 0.3 <= elapsed < 3.0  # backoff 0.1 + 0.2 s, then give up


def test_a_passing_500_is_absorbed_by_a_retry() -> None:
    def flaky(server: FaultyServer, body: dict[str, Any], n: int) -> tuple[int, Any, float]:
        return (503, {"error": {"message": "loading"}}, 0.0) if n == 1 else (200, completion_body('{"age":61}'), 0.0)

    with FaultyServer(flaky) as server:
        [result] = engine_for(server).generate([request()])
    assert server.hits == 2
    assert (result.finish_reason, result.text) == ("stop", '{"age":61}')


def test_a_hung_server_times_out_and_raises_transient_error_within_the_deadline() -> None:
    with FaultyServer(lambda s, body, n: (200, completion_body('{"age":1}'), 30.0)) as server:
        engine = engine_for(server, timeout_s=0.5, max_retries=1, backoff_s=0.1)
        started = time.perf_counter()
        with pytest.raises(TransientError) as info:
            engine.generate([request()])
        elapsed = time.perf_counter() - started
    assert server.hits == 2
    assert "no answer within 0.5 s" in info.value.message
    # Deadline: (max_retries + 1) * timeout_s + backoff = 2 * 0.5 + 0.1 s, plus scheduling slack.
    assert 1.0 <= elapsed < 2.5


def test_a_refused_connection_is_transient() -> None:
    engine = OpenAICompatEngine(
        base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2.0, max_retries=1, backoff_s=0.05
    )
    started = time.perf_counter()
    with pytest.raises(TransientError, match="ConnectError"):
        engine.generate([request()])
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(400, BadInputError, "engine_rejected"), (401, ConfigError, "engine_config"), (404, ConfigError, "engine_config")],
    ids=["400-bad-input", "401-config", "404-config"],
)
def test_a_4xx_is_not_retried_and_says_why(status: int, error: type[Exception], code: str) -> None:
    answer = {"error": {"message": f"maximum context length exceeded; input_value='{SECRET}'"}}
    with FaultyServer(lambda s, body, n: (status, answer, 0.0)) as server:
        with pytest.raises(error) as info:
            engine_for(server).generate([request(SECRET)])
    assert server.hits == 1
    assert getattr(info.value, "code", None) == code
    message = str(info.value)
    assert f"HTTP {status}" in message and "maximum context length" in message and SECRET not in message


def test_one_failed_request_fails_the_call_and_cancels_the_rest() -> None:
    def one_bad(server: FaultyServer, body: dict[str, Any], n: int) -> tuple[int, Any, float]:
        if "BAD" in body["messages"][-1]["content"]:
            return 500, {"error": {"message": "boom"}}, 0.0
        return 200, completion_body('{"age":5}'), 10.0  # would take long: must be cancelled, not awaited

    with FaultyServer(one_bad) as server:
        engine = engine_for(server, concurrency=4, max_retries=1, backoff_s=0.05)
        started = time.perf_counter()
        with pytest.raises(TransientError):
            engine.generate([request("ok 1"), request("BAD"), request("ok 2"), request("ok 3")])
        assert time.perf_counter() - started < 3.0


# --- many in flight, results in order ------------------------------------------------------------------


def test_requests_are_in_flight_together_up_to_the_bound_and_come_back_in_order() -> None:
    def echo_slowly(server: FaultyServer, body: dict[str, Any], n: int) -> tuple[int, Any, float]:
        number = int(body["messages"][-1]["content"].split()[-1])
        return 200, completion_body(json.dumps({"age": number}, separators=(",", ":"))), 0.3

    requests = [request(f"request {i}", rid=f"doc:{i}") for i in range(24)]
    with FaultyServer(echo_slowly) as server:
        engine = engine_for(server, concurrency=8)
        started = time.perf_counter()
        results = engine.generate(requests)
        elapsed = time.perf_counter() - started
    assert [json.loads(r.text)["age"] for r in results] == list(range(24))
    assert server.peak_in_flight == 8 and engine.peak_in_flight == 8
    assert elapsed < 24 * 0.3 / 2  # about 3 waves of 8 (0.9 s), far from 24 one after another (7.2 s)
    print(f"24 requests of 0.3 s, bound 8: {elapsed:.2f} s, server saw {server.peak_in_flight} in flight")
    assert {b["max_tokens"] for b in server.bodies} == {16}


def test_generate_also_works_from_inside_a_running_event_loop() -> None:
    import asyncio

    with FaultyServer(lambda s, body, n: (200, completion_body('{"age":3}'), 0.0)) as server:
        engine = engine_for(server)

        async def caller() -> str:
            return engine.generate([request()])[0].text  # e.g. a sync helper called from async code

        assert asyncio.run(caller()) == '{"age":3}'


# --- settings ------------------------------------------------------------------------------------------


def test_settings_build_the_openai_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABSTRACTOR_ENGINE", "openai")
    monkeypatch.setenv("ABSTRACTOR_OPENAI_BASE_URL", "http://vllm:8000/v1")
    monkeypatch.setenv("ABSTRACTOR_OPENAI_MODEL", "qwen-extract")
    monkeypatch.setenv("ABSTRACTOR_OPENAI_API_KEY", "k" * 32)
    monkeypatch.setenv("ABSTRACTOR_ENGINE_CONCURRENCY", "48")
    monkeypatch.setenv("ABSTRACTOR_REQUEST_TIMEOUT_S", "90")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = engine_from(settings)  # builds a client only: nothing is contacted yet
    assert isinstance(engine, OpenAICompatEngine)
    assert (engine.base_url, engine.model, engine.concurrency, engine.timeout_s) == (
        "http://vllm:8000/v1",
        "qwen-extract",
        48,
        90.0,
    )
    assert model_ref(settings) == (engine.info.model, f"{engine.info.engine}+{engine.info.grammar_backend}")


def test_openai_engine_without_a_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        build_engine("openai")
    with pytest.raises(ConfigError, match="unknown engine"):
        build_engine("tgi")


@pytest.mark.model
def test_the_served_model_name_is_checked_against_the_server(llama_server: LlamaServer) -> None:
    wrong = OpenAICompatEngine(base_url=llama_server.base_url, model="not-served")
    with pytest.raises(ConfigError, match="does not serve model 'not-served'"):
        _ = wrong.context_tokens


# --- the real llama-cpp-python server -------------------------------------------------------------------


def llama_engine(server: LlamaServer, **kwargs: Any) -> OpenAICompatEngine:
    options: dict[str, Any] = {"timeout_s": 300.0, "concurrency": 4, "response_format_style": "json_object"}
    options.update(kwargs)
    return OpenAICompatEngine(base_url=server.base_url, model=SERVED_MODEL, default_context_tokens=4096, **options)


@pytest.mark.model
def test_real_server_counts_tokens_and_reports_its_context(llama_server: LlamaServer) -> None:
    engine = llama_engine(llama_server)
    assert engine.context_tokens == 4096  # llama.cpp's /v1/models has no max_model_len: the configured value
    assert engine.count_tokens("hello world") == 2
    assert engine.count_tokens("John Perry is a 61-year-old male.") > 5


@pytest.mark.model
@pytest.mark.slow
def test_real_server_answers_schema_valid_json(llama_server: LlamaServer) -> None:
    engine = llama_engine(llama_server)
    started = time.perf_counter()
    results = engine.generate(
        [request(f"{name} is {age} years old. Give the age.", max_tokens=12) for name, age in [("Ann", 34), ("Bo", 7)]]
    )
    elapsed = time.perf_counter() - started
    for result, age in zip(results, [34, 7], strict=True):
        assert result.finish_reason == "stop", result.error
        assert json.loads(result.text) == {"age": age}
        assert result.completion_tokens > 0
    tokens = sum(r.completion_tokens for r in results)
    print(f"llama server: {tokens} tokens in {elapsed:.1f} s, peak {engine.peak_in_flight} in flight")


@pytest.mark.model
@pytest.mark.slow
def test_truncated_output_fails_after_the_pipeline_retry(llama_server: LlamaServer) -> None:
    spec = get_schema("nda")
    engine = llama_engine(llama_server)
    with pytest.raises(OutputError) as info:
        extract_document(document(), spec, engine, PipelineOptions(max_new_tokens=2))
    assert info.value.code == "output_truncated"
    assert "at 4 tokens" in info.value.message  # the retry doubled the budget and was cut again


@pytest.mark.model
@pytest.mark.slow
def test_pipeline_extracts_a_document_through_the_real_server(llama_server: LlamaServer) -> None:
    spec = get_schema("nda")
    engine = llama_engine(llama_server)
    started = time.perf_counter()
    record = extract_document(document(), spec, engine, PipelineOptions(max_new_tokens=160))
    elapsed = time.perf_counter() - started
    assert record["model"]["engine"] == "openai" and record["model"]["model"] == SERVED_MODEL
    assert record["timings"]["engine_calls"] >= 1 and record["timings"]["completion_tokens"] > 0
    spec.model.model_validate(record["data"])  # the stored record is schema-valid as it stands
    assert record["data"]["jurisdiction"] == "Oregon"
    assert record["evidence"]["jurisdiction"], "a kept value is grounded to a span of the source"
    tokens = record["timings"]["completion_tokens"]
    print(f"pipeline via llama server: {tokens} completion tokens in {elapsed:.1f} s ({tokens / elapsed:.2f} tok/s)")
