"""User JSON Schemas: meta-validation at registration, strict instance validation, the Pydantic path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.errors import InvalidSchemaError, SchemaError
from schemas.user_schema import CHECKED_FORMATS, InstanceValidationError, load_user_schema

BENCH_IDS = [
    "Github_easy---o78783",  # draft-04, date-time
    "Github_easy---o9778",  # draft-04, oneOf, pattern, email
    "Github_medium---o9872",  # 13 invalid instances, patterns, date-time
    "Github_medium---o39426",  # $ref to definitions
    "Github_medium---o55244",  # oneOf, not, dependencies
    "Glaiveai2K---find_hotel_cd6e97f8",  # no $schema (2020-12), date
    "Handwritten---dep7",  # dependencies, anyOf/allOf/not
    "Synthesized---draft2019_09_valid_patternProperties_id11_subschema1_not_2",
]


def _bench(shared_data: Path, schema_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((shared_data / "jsonschemabench" / f"{schema_id}.json").read_text())
    return doc


@pytest.mark.parametrize("schema_id", BENCH_IDS, ids=BENCH_IDS)
def test_benchmark_tests_are_judged_like_the_benchmark(shared_data: Path, schema_id: str) -> None:
    doc = _bench(shared_data, schema_id)
    user = load_user_schema(doc["schema"])
    for case in doc["tests"]:
        assert user.is_valid(case["data"]) is case["valid"], case.get("description")


INVALID_SCHEMAS = {
    "unknown-type": ({"type": "strin"}, "$.type"),
    "negative-min-length": ({"type": "string", "minLength": -1}, "minLength"),
    "draft4-bool-exclusive": (
        {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "exclusiveMinimum": 3},
        "exclusiveMinimum",
    ),
    "required-not-list": ({"type": "object", "required": "name"}, "required"),
    "unknown-dialect": ({"$schema": "http://example.com/my-schema", "type": "object"}, "unknown $schema"),
    "dangling-ref": (
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
        "points at nothing",
    ),
    "remote-ref": ({"$ref": "https://example.com/schema.json"}, "remote references are not fetched"),
    "bad-pattern": ({"type": "string", "pattern": "(unclosed"}, "pattern"),
    "bad-pattern-properties-draft4": (
        {"$schema": "http://json-schema.org/draft-04/schema#", "patternProperties": {"[": {}}},
        "not a valid regular expression",
    ),
    "not-an-object": ([{"type": "string"}], "must be a JSON object"),
    "nan": ({"type": "number", "maximum": float("nan")}, "not plain JSON"),
}


@pytest.mark.parametrize(("schema", "reason"), INVALID_SCHEMAS.values(), ids=INVALID_SCHEMAS.keys())
def test_meta_invalid_schemas_are_refused_with_a_reason(schema: Any, reason: str) -> None:
    with pytest.raises(InvalidSchemaError) as caught:
        load_user_schema(schema)
    assert reason in str(caught.value)
    assert caught.value.code == "invalid_schema"


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "born": {"type": "string", "format": "date"},
        "email": {"type": "string", "format": "email"},
        "ip": {"type": "string", "format": "ipv4"},
        "id": {"type": "string", "format": "uuid"},
        "seen": {"type": "string", "format": "date-time"},
        "home": {"type": "string", "format": "uri"},
        "age": {"$ref": "#/$defs/age"},
    },
    "required": ["name"],
    "additionalProperties": False,
    "$defs": {"age": {"type": "integer", "minimum": 0}},
}

BAD_FORMATS = {
    "date": ("born", "2021-02-30"),
    "email": ("email", "jane.example.com"),
    "ipv4": ("ip", "999.1.1.1"),
    "uuid": ("id", "not-a-uuid"),
    "date-time": ("seen", "2021-01-01 25:00"),
    "uri": ("home", "relative/path"),
}


@pytest.mark.parametrize(("key", "value"), BAD_FORMATS.values(), ids=BAD_FORMATS.keys())
def test_formats_are_asserted(key: str, value: str) -> None:
    user = load_user_schema(PERSON)
    assert not user.is_valid({"name": "x", key: value})
    assert user.errors({"name": "x", key: value})[0].keyword == "format"


def test_good_formats_pass() -> None:
    user = load_user_schema(PERSON)
    user.validate(
        {
            "name": "Jane",
            "born": "2021-02-28",
            "email": "jane@example.com",
            "ip": "10.0.0.1",
            "id": "123e4567-e89b-12d3-a456-426614174000",
            "seen": "2021-01-01T10:00:00Z",
            "home": "https://example.com/a",
            "age": 40,
        }
    )


def test_error_lists_paths_and_keywords_never_values() -> None:
    user = load_user_schema(PERSON)
    secret = "Jane Secret-Patient"
    with pytest.raises(InstanceValidationError) as caught:
        user.validate({"born": secret, "age": -4, "extra": secret})
    message = str(caught.value)
    assert secret not in message and "-4" not in message
    assert "$.born (format)" in message
    assert "$.age (minimum)" in message
    assert "$ (required: name)" in message
    assert "$ (additionalProperties)" in message
    assert isinstance(caught.value, SchemaError)
    assert caught.value.code == "instance_invalid"


def test_integer_follows_the_declared_draft() -> None:
    # draft-04 says 1.0 is not an integer; draft-06 and later say it is.
    draft4 = load_user_schema({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"})
    draft7 = load_user_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "integer"})
    assert not draft4.is_valid(1.0)
    assert draft7.is_valid(1.0)
    assert not draft7.is_valid(True)


def test_model_plugs_into_pydantic_without_echoing_input() -> None:
    model = load_user_schema(PERSON, name="person").model
    assert model.model_validate({"name": "Jane", "age": 3}).root == {"name": "Jane", "age": 3}
    assert model.model_validate_json('{"name": "Jane"}').root == {"name": "Jane"}
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"name": "Jane", "born": "Jane Secret-Patient"})
    assert "Secret" not in str(caught.value)
    assert "$.born (format)" in str(caught.value)
    assert model.model_json_schema() == PERSON
    assert model.__name__ == "person"


def test_schema_is_a_private_copy() -> None:
    original: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "integer"}}}
    user = load_user_schema(original)
    original["properties"]["a"]["type"] = "string"
    user.schema["properties"]["a"]["type"] = "string"
    assert not user.is_valid({"a": "text"})


def test_format_libraries_are_installed() -> None:
    # Without jsonschema's format extras these formats would be skipped silently, not rejected.
    expected = {"date", "date-time", "time", "email", "hostname", "ipv4", "ipv6", "uri", "uri-reference"}
    expected |= {"iri", "uuid", "regex", "duration", "json-pointer", "uri-template", "idn-hostname"}
    assert expected <= CHECKED_FORMATS
