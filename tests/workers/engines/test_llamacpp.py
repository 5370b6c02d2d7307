"""The local CPU engine with the real embedded model: constrained output always parses and validates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.registry import get_schema
from workers.engines.constraints import generation_schema
from workers.engines.llamacpp import LlamaCppEngine
from workers.engines.protocol import GenerationRequest, GenerationResult
from workers.pipeline.prompting import build_messages
from workers.pipeline.validation import OutputError, validate_output

pytestmark = [pytest.mark.model, pytest.mark.slow]

NOTE = (
    "CHIEF COMPLAINT\n\nKnee pain.\n\nHISTORY OF PRESENT ILLNESS\n\nJohn Perry is a 61-year-old male "
    "who presents with right knee pain after a fall. He takes ibuprofen 400 mg by mouth twice a day. "
    "Allergies: penicillin.\n\nPLAN\n\nFollow up in 2 weeks."
)


def _request(schema_name: str, text: str, max_tokens: int = 256) -> tuple[GenerationRequest, Any]:
    spec = get_schema(schema_name)
    schema = spec.json_schema()
    req = GenerationRequest(
        messages=build_messages(
            spec.ref, schema, text, 1, 1, (1,), (spec.example_document or "", spec.example_record or {})
        ),
        json_schema=generation_schema(schema),
        max_tokens=max_tokens,
    )
    return req, spec


def test_constrained_output_is_compact_valid_json(engine: LlamaCppEngine) -> None:
    req, spec = _request("clinical_note", NOTE)
    result = engine.generate([req])[0]
    assert result.finish_reason == "stop", result.error
    assert result.prompt_tokens > 50 and result.completion_tokens > 5
    assert "\n" not in result.text  # compact JSON: no free whitespace
    data = validate_output(result, spec.model)
    assert set(data) == set(spec.model.model_fields)
    assert data["patient_age"] == 61
    assert data["patient_sex"] == "male"


def test_truncated_output_is_reported_not_repaired(engine: LlamaCppEngine) -> None:
    req, spec = _request("clinical_note", NOTE, max_tokens=8)
    result = engine.generate([req])[0]
    assert result.finish_reason == "length"
    with pytest.raises(OutputError) as info:
        validate_output(result, spec.model)
    assert info.value.code == "output_truncated"


def test_a_prompt_that_leaves_no_room_to_answer_is_refused_before_the_model_runs(engine: LlamaCppEngine) -> None:
    from workers.errors import BadInputError

    req, _ = _request("clinical_note", NOTE, max_tokens=engine.context_tokens)
    with pytest.raises(BadInputError) as info:
        engine.generate([req])
    assert info.value.code == "prompt_too_long"
    assert "Perry" not in str(info.value)  # counts only, no document text


# A tenant-sized schema: outlines-core's index over the whole vocabulary is about 0.13 GiB and seconds to build
# for it, against 7 GB and a minute for the NDA's (whose fit in the default budget is checked by estimate in
# test_constraints.py).
GOVERNING_LAW = {
    "title": "Governing law",
    "type": "object",
    "properties": {
        "jurisdiction": {"type": ["string", "null"], "maxLength": 40},
        "effective_date": {"type": ["string", "null"], "format": "date"},
    },
}


@pytest.mark.parametrize("backend", ["llguidance", "outlines_core"], ids=["llguidance", "outlines_core"])
def test_grammar_backend_is_a_setting(backend: str, model_cache: Path) -> None:
    from schemas.user_schema import load_user_schema

    engine = LlamaCppEngine(cache_dir=model_cache, grammar_backend=backend)
    assert engine.info.grammar_backend == backend
    model = load_user_schema(GOVERNING_LAW).model

    def ask(text: str) -> GenerationResult:
        request = GenerationRequest(
            messages=build_messages("Governing law", GOVERNING_LAW, text, 1, 1, (1,)),
            json_schema=generation_schema(GOVERNING_LAW),
            max_tokens=96,
        )
        (result,) = engine.generate([request])
        assert result.finish_reason == "stop", result.error
        record = validate_output(result, model)
        assert json.loads(result.text).keys() == record.keys() == GOVERNING_LAW["properties"].keys()
        return result

    first = ask("This Agreement, dated March 3, 2015, is governed by the laws of the State of Delaware.")
    # The next chunk under the same schema walks the grammar built for the first: outlines-core's index
    # over the whole vocabulary (most of the first call's set-up) is not built again.
    again = ask("This Agreement between Gamma Inc. and Delta plc is governed by the laws of Ohio.")
    if backend == "outlines_core":
        assert again.timings["grammar_setup_s"] * 20 < first.timings["grammar_setup_s"]


def test_a_schema_whose_outlines_core_index_would_not_fit_is_refused_before_it_is_built(model_cache: Path) -> None:
    from workers.engines.grammar import GRAMMAR_TOO_LARGE, build_grammar
    from workers.engines.model_files import QWEN25_CODER_05B
    from workers.errors import BadInputError

    engine = LlamaCppEngine(cache_dir=model_cache, grammar_backend="outlines_core")
    req, _ = _request("clinical_note", NOTE)
    with pytest.raises(BadInputError) as refused:
        engine.generate([req])
    # About 90 GB over this model's vocabulary, against the default 8 GiB: refused by its estimate, in seconds.
    assert refused.value.code == GRAMMAR_TOO_LARGE
    assert refused.value.details["estimated_bytes"] > 10 * refused.value.details["budget_bytes"]
    # Admission estimates the same size without the model, from the vocabulary size written down for it.
    grammar = build_grammar(req.json_schema, "outlines_core")
    assert grammar.model_index_bytes(QWEN25_CODER_05B.vocab_size) == refused.value.details["estimated_bytes"]
    assert "Perry" not in str(refused.value) and "patient" not in str(refused.value).lower()


def test_unconstrained_mode_exists_for_benchmarks(model_cache: Path) -> None:
    engine = LlamaCppEngine(cache_dir=model_cache, grammar_backend="none")
    req, _ = _request("nda", "This Agreement is made between Acme Corp. and Beta LLC.", max_tokens=40)
    result = engine.generate([req])[0]
    assert result.completion_tokens > 0
    assert result.error is None


def test_every_generated_token_carries_its_masked_log_probability(engine: LlamaCppEngine) -> None:
    from workers.engines.protocol import Message

    schema = {
        "type": "object",
        "properties": {"kind": {"const": "nda"}, "name": {"type": "string"}},
        "required": ["kind", "name"],
        "additionalProperties": False,
    }
    request = GenerationRequest(
        messages=(Message("user", "Zoë Ångström signed it. Answer with JSON."),), json_schema=schema, max_tokens=40
    )
    (result,) = engine.generate([request])
    assert result.finish_reason == "stop"
    tokens = result.tokens
    assert tokens and "".join(result.text[t.start : t.end] for t in tokens) == result.text
    assert all(t.logprob <= 0.0 for t in tokens)
    # Under the grammar the constant is the only choice: its tokens are certain, whatever the model thinks.
    const_start = result.text.index('"nda"')
    forced = [t for t in tokens if t.start >= const_start and t.end <= const_start + len('"nda"')]
    assert forced and all(t.logprob > -1e-4 for t in forced)


def test_the_tokens_the_grammar_forces_go_to_the_model_in_batches(model_cache: Path) -> None:
    """Keys and separators are evaluated with the token before them, not one forward pass each; the answer
    is still the grammar's and every forced token is certain."""
    engine = LlamaCppEngine(cache_dir=model_cache, grammar_backend="llguidance")
    req, spec = _request("nda", "This Agreement is made between Acme Corp. and Beta LLC on March 3, 2015.")
    (result,) = engine.generate([req])
    assert result.finish_reason == "stop", result.error
    validate_output(result, spec.model)
    passes = int(result.timings["forward_passes"])
    # One pass per token the model chose, none for what the grammar forced (and none after the last brace).
    chosen = [t for t in result.tokens if t.logprob < 0.0]
    assert 1 <= passes <= len(chosen) + 1 < result.completion_tokens
    key = result.text.index('"jurisdiction":')
    assert all(t.logprob == 0.0 for t in result.tokens if key <= t.start and t.end <= key + len('"jurisdiction":'))
    # The prompt's reply to the same request again: the same answer (the KV cache is reused, not stale).
    (again,) = engine.generate([req])
    assert again.text == result.text
    # One decode step per token, as without fast-forwarding: the same answer in more passes.
    stepwise = LlamaCppEngine(cache_dir=model_cache, grammar_backend="llguidance", fast_forward=False)
    (slow,) = stepwise.generate([req])
    assert slow.text == result.text
    assert int(slow.timings["forward_passes"]) == slow.completion_tokens + 1 > passes  # + the end of text


def _marked_request(schema: dict[str, Any], max_tokens: int = 60) -> GenerationRequest:
    from workers.engines.protocol import Message

    text = "Patient: Zorblax Quintavius, code aaaab. Answer with JSON."
    return GenerationRequest(
        messages=(Message("user", text),), json_schema=generation_schema(schema), max_tokens=max_tokens
    )


def test_a_grammar_that_breaks_mid_generation_fails_quietly_with_its_own_code(
    engine: LlamaCppEngine, capfd: pytest.CaptureFixture[str]
) -> None:
    # llguidance compiles this pattern, then its lexer gives up when it meets it (LexerTooComplex).
    schema = {
        "type": "object",
        "properties": {"qvx_code": {"type": "string", "pattern": "^(a|aa){1000,}b$", "description": "qvxmarker"}},
    }
    (result,) = engine.generate([_marked_request(schema)])
    assert (result.finish_reason, result.error_code, result.text) == ("error", "grammar_failed", "")
    assert result.error == "the grammar engine failed during generation (LexerTooComplex)"
    with pytest.raises(OutputError) as info:
        validate_output(result, get_schema("nda").model)
    assert info.value.code == "grammar_failed"
    # Nothing printed: llguidance's Rust side and outlines' warning both quoted the tokens and the schema.
    written = capfd.readouterr()
    for marker in ("Zorblax", "qvxmarker", "qvx_code", "lexer error"):
        assert marker not in written.out and marker not in written.err
    # The engine goes on: the next request is unaffected.
    (after,) = engine.generate([_marked_request({"type": "object", "properties": {"name": {"type": "string"}}})])
    assert after.finish_reason == "stop" and json.loads(after.text)["name"]


def test_the_time_budget_stops_the_decode_from_inside(model_cache: Path) -> None:
    budget_s = 2.0
    timed = LlamaCppEngine(cache_dir=model_cache, generation_timeout_s=budget_s)
    endless = {
        "type": "object",
        "properties": {"names": {"type": "array", "items": {"type": "string"}, "minItems": 10**6}},
    }
    (result,) = timed.generate([_marked_request(endless, max_tokens=2_000)])
    assert (result.finish_reason, result.error_code, result.text) == ("error", "generation_stalled", "")
    assert result.error == "the generation ran past its time budget of 2 s"
    assert result.completion_tokens < 2_000
    # The budget counts from the end of grammar setup and is checked before every token: one token late at most.
    assert result.timings["generate_s"] < budget_s + 30
