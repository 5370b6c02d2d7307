"""Schemas bounded by their expanded size: counted without being built, refused before any compiler sees them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from schemas.bounds import MAX_DEPTH, MAX_EXPANDED_NODES, SchemaShapeError, check_shape
from schemas.registry import get_schema
from service.jobs.admission import SchemaRefused, admit_schema


def fan_out(levels: int, width: int = 2) -> dict[str, Any]:
    """d0 -> {l: d1, r: d1} -> ... : about 2 KB written, width**levels subschemas once expanded."""
    defs: dict[str, Any] = {f"d{levels}": {"type": "string"}}
    for n in range(levels - 1, -1, -1):
        child = {"$ref": f"#/$defs/d{n + 1}"}
        defs[f"d{n}"] = {"type": "object", "properties": {f"p{i}": child for i in range(width)}}
    return {"type": "object", "properties": {"root": {"$ref": "#/$defs/d0"}}, "$defs": defs}


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"type": "object", "properties": {"x": node}}
    return node


HOSTILE = {
    "fan-out-30": (fan_out(30), "schema_too_deep"),  # the issue's 1.9 KB schema: 2**30 nodes, 60 levels deep
    "fan-out-8x5": (fan_out(5, width=8), "schema_too_large"),  # shallow but 8**5 nodes
    "self-ref": ({"type": "object", "properties": {"a": {"$ref": "#"}}}, "schema_recursive"),
    "ref-cycle": (
        {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/x"}},
            "$defs": {"x": {"type": "object", "properties": {"y": {"$ref": "#/$defs/y"}}}, "y": {"$ref": "#/$defs/x"}},
        },
        "schema_recursive",
    ),
    "recursive-required": (
        {
            "type": "object",
            "properties": {"n": {"$ref": "#/$defs/node"}},
            "required": ["n"],
            "$defs": {
                "node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}
            },
        },
        "schema_recursive",
    ),
    "nesting-98": (nested(98), "schema_too_deep"),
    "nesting-5000": (nested(5000), "schema_too_deep"),  # past Python's recursion limit: still a clean refusal
    "allOf-200": ({"type": "object", "properties": {"a": {"allOf": [nested(20)] * 300}}}, "schema_too_large"),
    "200k-properties": (
        {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(200_000)}},
        "schema_too_large",
    ),
}


@pytest.mark.parametrize(("schema", "code"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_shapes_are_refused_quickly_with_their_code(schema: dict[str, Any], code: str) -> None:
    assert len(json.dumps(fan_out(30))) < 4096  # the fan-out really is a small file
    started = time.monotonic()
    with pytest.raises(SchemaRefused) as refused:
        admit_schema(schema, "hostile", "llguidance")
    assert time.monotonic() - started < 5.0
    assert refused.value.code == code
    # Our limit only: no property name, $ref or other text of the schema comes back.
    assert set(refused.value.details) <= {"limit"}
    assert "p1" not in refused.value.message and "d0" not in refused.value.message


def test_the_count_follows_refs_once_each() -> None:
    check_shape(fan_out(10))  # 2**10 expanded subschemas: under the limit, so admitted
    with pytest.raises(SchemaShapeError) as refused:
        check_shape(fan_out(5, width=6))  # 6**5 > MAX_EXPANDED_NODES at depth 11
    assert refused.value.code == "schema_too_large" and refused.value.details == {"limit": MAX_EXPANDED_NODES}
    check_shape(nested(MAX_DEPTH - 2))
    with pytest.raises(SchemaShapeError):
        check_shape(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("name", ["nda", "clinical_note", "contract"])
def test_the_built_in_schemas_are_well_inside_the_bounds(name: str) -> None:
    check_shape(get_schema(name).json_schema())
