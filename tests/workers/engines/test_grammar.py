"""Compiling JSON Schemas with each grammar backend: what compiles, what is refused, compact JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from workers.engines.grammar import (
    GRAMMAR_BACKENDS,
    UnsupportedSchemaError,
    build_grammar,
    compile_json_schema,
)
from workers.errors import BadInputError, ConfigError

BACKENDS = ["llguidance", "outlines_core"]
COMPILED_BENCH_IDS = ["Github_easy---o10008", "Github_easy---o78783", "Glaiveai2K---find_hotel_cd6e97f8"]

OBJECT = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


def _bench_schema(shared_data: Path, schema_id: str) -> dict[str, Any]:
    doc = json.loads((shared_data / "jsonschemabench" / f"{schema_id}.json").read_text())
    schema: dict[str, Any] = doc["schema"]
    return schema


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("schema_id", COMPILED_BENCH_IDS, ids=COMPILED_BENCH_IDS)
def test_benchmark_schemas_compile(shared_data: Path, schema_id: str, backend: Any) -> None:
    compile_json_schema(_bench_schema(shared_data, schema_id), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_schema_as_text_compiles(backend: Any) -> None:
    compile_json_schema(json.dumps(OBJECT), backend)


UNSUPPORTED_BY_LLGUIDANCE = {
    # llguidance only warns about keywords it leaves out; a warning must still mean "unsupported".
    "not": ({"type": "string", "not": {"const": "x"}}, "not"),
    "dependencies": ({"type": "object", "dependencies": {"a": ["b"]}}, "dependencies"),
    "unknown-format": ({"type": "string", "format": "mongoId"}, "Unknown format"),
    # Overlapping oneOf branches: approximating by anyOf would accept what the validator rejects.
    "oneOf": ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "oneOf"),
}


@pytest.mark.parametrize(("schema", "reason"), UNSUPPORTED_BY_LLGUIDANCE.values(), ids=UNSUPPORTED_BY_LLGUIDANCE.keys())
def test_llguidance_refuses_what_it_cannot_enforce(schema: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsupportedSchemaError) as caught:
        compile_json_schema(schema, "llguidance")
    assert caught.value.code == "unsupported_schema"
    assert isinstance(caught.value, BadInputError)
    assert reason in caught.value.message and caught.value.message.startswith("llguidance: ")


def test_a_lenient_x_guidance_cannot_sneak_unsupported_keywords_in() -> None:
    with pytest.raises(UnsupportedSchemaError):
        compile_json_schema({"type": "string", "not": {"const": "x"}, "x-guidance": {"lenient": True}}, "llguidance")


def test_outlines_core_refuses_unknown_formats() -> None:
    with pytest.raises(UnsupportedSchemaError, match="outlines_core: Format path"):
        compile_json_schema({"type": "string", "format": "path"}, "outlines_core")


@pytest.mark.parametrize("backend", BACKENDS)
def test_json_is_compact(backend: Any) -> None:
    grammar = build_grammar(OBJECT, backend)
    assert grammar.accepts('{"a":1,"b":"x"}')
    assert not grammar.accepts('{"a": 1,"b":"x"}')
    assert not grammar.accepts('{ "a":1,"b":"x"}')
    assert not grammar.accepts('{"a":1,"b":"x"}\n')
    assert not grammar.accepts('{"a":"1","b":"x"}')


def test_user_x_guidance_cannot_turn_whitespace_back_on() -> None:
    schema = {**OBJECT, "x-guidance": {"whitespace_flexible": True, "whitespace_pattern": "[ ]*"}}
    grammar = build_grammar(schema, "llguidance")
    assert grammar.accepts('{"a":1,"b":"x"}')
    assert not grammar.accepts('{"a": 1,"b":"x"}')


def test_non_ascii_strings_pass_through_the_byte_vocabulary() -> None:
    for backend in BACKENDS:
        assert build_grammar(OBJECT, backend).accepts('{"a":1,"b":"Zürich – 東京"}')  # type: ignore[arg-type]


@pytest.mark.skipif(importlib.util.find_spec("xgrammar") is not None, reason="xgrammar is installed here")
def test_xgrammar_missing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="xgrammar is not installed"):
        compile_json_schema(OBJECT, "xgrammar")


def test_unknown_backend_and_bad_text() -> None:
    assert set(GRAMMAR_BACKENDS) == {"llguidance", "outlines_core", "xgrammar"}
    with pytest.raises(ConfigError):
        compile_json_schema(OBJECT, "guidance")  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="not valid JSON"):
        compile_json_schema("{not json", "llguidance")
    with pytest.raises(BadInputError, match="JSON object"):
        compile_json_schema("[1]", "llguidance")
