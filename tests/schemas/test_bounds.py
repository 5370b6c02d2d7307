"""Schemas held to our bounds by a cheap walk: as written (bytes, nesting, strings, enums, properties, counts)
and expanded (subschemas, depth, cycles), refused before any third-party code sees them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from schemas.bounds import SchemaBounds, SchemaShapeError, check_shape, pattern_repeat
from schemas.registry import get_schema
from service.jobs.admission import SchemaRefused, admit_schema

BOUNDS = SchemaBounds()
MARKER = "canary7d1e9b"


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


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def deep_list(depth: int) -> Any:
    value: Any = MARKER
    for _ in range(depth):
        value = [value]
    return value


def nested_all_of(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"allOf": [node]}
    return obj(a=node)


HOSTILE: dict[str, tuple[Any, str, str | None]] = {
    # The issue's inputs: (schema, code, the bound named in details.limit).
    "fan-out-30": (fan_out(30), "schema_too_deep", "schema_max_depth"),  # 1.9 KB: 2**30 nodes, 60 deep
    "fan-out-8x5": (fan_out(5, width=8), "schema_too_large", "schema_max_nodes"),  # shallow but 8**5 nodes
    "self-ref": (obj(a={"$ref": "#"}), "schema_recursive", None),
    "ref-cycle": (
        {
            **obj(a={"$ref": "#/$defs/x"}),
            "$defs": {"x": obj(y={"$ref": "#/$defs/y"}), "y": {"$ref": "#/$defs/x"}},
        },
        "schema_recursive",
        None,
    ),
    "recursive-required": (
        {
            **obj(n={"$ref": "#/$defs/node"}),
            "required": ["n"],
            "$defs": {"node": {**obj(next={"$ref": "#/$defs/node"}), "required": ["next"]}},
        },
        "schema_recursive",
        None,
    ),
    "ref-into-a-list": ({**obj(a={"type": "string"}), "allOf": [{"$ref": "#/allOf/0"}]}, "schema_recursive", None),
    "nesting-98": (nested(98), "schema_too_deep", "schema_max_depth"),
    "nesting-5000": (nested(5000), "schema_too_deep", "schema_max_depth"),  # past Python's recursion limit
    "allOf-x300": (obj(a={"allOf": [nested(20)] * 300}), "schema_too_large", None),  # properties or nodes
    "allOf-nested-200": (nested_all_of(200), "schema_too_deep", "schema_max_depth"),
    "200k-properties": (
        obj(**{f"{MARKER}{i}": {"type": "string"} for i in range(200_000)}),
        "schema_too_large",
        "schema_max_properties",
    ),
    "1-MiB-const": (
        obj(a={"const": MARKER * (1024 * 1024 // len(MARKER))}),
        "schema_too_large",
        "schema_max_string_chars",
    ),
    "1-MiB-const-list": (obj(a={"const": [1] * 600_000}), "schema_too_large", "schema_max_bytes"),
    "const-nested-500": (obj(a={"const": deep_list(500)}), "schema_too_deep", "schema_max_depth"),
    "unreferenced-defs-5000": (
        {**obj(a={"type": "string"}), "$defs": {"x": nested(5000)}},
        "schema_too_deep",
        "schema_max_depth",
    ),
    "alternation-repeat": (obj(a={"type": "string", "pattern": "^(a|aa){1000,}b$"}), "schema_unrunnable", None),
    "nested-repeat": (obj(a={"type": "string", "pattern": "^((ab){30}c){30}$"}), "schema_unrunnable", None),
    "pattern-property-repeat": (
        {**obj(), "patternProperties": {"^x{5000}$": {"type": "string"}}},
        "schema_unrunnable",
        None,
    ),
    "minItems-1e9": (
        obj(a={"type": "array", "items": {"type": "string"}, "minItems": 1_000_000_000}),
        "schema_unrunnable",
        None,
    ),
    "maxLength-1e6": (obj(a={"type": "string", "maxLength": 1_000_000}), "schema_unrunnable", None),
    "minProperties-inf": (obj(a={"type": "object", "minProperties": float("inf")}), "schema_unrunnable", None),
    "enum-5000": (obj(a={"enum": [f"{MARKER}{i}" for i in range(5000)]}), "schema_too_large", "schema_max_enum"),
    "long-description": (
        obj(a={"type": "string", "description": MARKER * 1000}),
        "schema_too_large",
        "schema_max_string_chars",
    ),
    "long-property-name": (obj(**{MARKER * 500: {"type": "string"}}), "schema_too_large", "schema_max_string_chars"),
    "properties-spread": (
        obj(**{f"o{j}": obj(**{f"{MARKER}{i}": {"type": "string"} for i in range(60)}) for j in range(30)}),
        "schema_too_large",
        "schema_max_properties",
    ),
    "nan-const": (obj(a={"const": float("nan")}), "invalid_schema", None),
}


@pytest.mark.parametrize(("schema", "code", "limit"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_shapes_are_refused_quickly_with_their_code(schema: Any, code: str, limit: str | None) -> None:
    started = time.monotonic()
    with pytest.raises(SchemaRefused) as refused:
        admit_schema(schema, "hostile")
    assert time.monotonic() - started < 5.0  # generous: each is refused by the walk in milliseconds
    assert refused.value.code == code
    details = refused.value.details
    # Our limit only: no property name, $ref, const or other text of the schema comes back.
    assert set(details) <= {"limit", "max", "reason"}
    if limit is not None:
        assert details == {"limit": limit, "max": getattr(BOUNDS, limit.removeprefix("schema_"))}
    assert MARKER not in refused.value.message and "d0" not in refused.value.message
    assert MARKER not in json.dumps(details)


def test_the_issue_s_fan_out_is_a_small_file() -> None:
    assert len(json.dumps(fan_out(30))) < 4096


def test_the_count_follows_refs_once_each() -> None:
    check_shape(fan_out(10))  # 2**10 expanded subschemas: under the limit, so admitted
    with pytest.raises(SchemaShapeError) as refused:
        check_shape(fan_out(5, width=6))  # 6**5 > max_nodes at depth 11
    assert refused.value.code == "schema_too_large"
    assert refused.value.details == {"limit": "schema_max_nodes", "max": BOUNDS.max_nodes}
    check_shape(nested(BOUNDS.max_depth - 2))
    with pytest.raises(SchemaShapeError):
        check_shape(nested(BOUNDS.max_depth + 1))


def test_each_bound_is_the_caller_s() -> None:
    """The same schema passes or not by the bounds it is given: schemas/ holds defaults, not the policy."""
    counted = obj(a={"type": "string", "pattern": "^(a|aa){1000,}b$", "maxLength": 2000})
    with pytest.raises(SchemaShapeError) as refused:
        check_shape(counted)
    assert refused.value.details == {"limit": "schema_max_repeat", "max": BOUNDS.max_repeat}
    check_shape(counted, SchemaBounds(max_repeat=2000))
    three_kb = obj(**{f"p{i}": {"type": "string"} for i in range(120)})
    check_shape(three_kb)
    with pytest.raises(SchemaShapeError) as refused:
        check_shape(three_kb, SchemaBounds(max_bytes=2048))
    assert refused.value.details == {"limit": "schema_max_bytes", "max": 2048}
    for bounds, limit in [
        (SchemaBounds(max_properties=100), "schema_max_properties"),
        (SchemaBounds(max_nodes=100), "schema_max_nodes"),
        (SchemaBounds(max_depth=1), "schema_max_depth"),
    ]:
        with pytest.raises(SchemaShapeError) as refused:
            check_shape(three_kb, bounds)
        assert refused.value.details["limit"] == limit
    with pytest.raises(SchemaShapeError) as refused:
        check_shape(obj(a={"enum": ["x", "y", "z"]}), SchemaBounds(max_enum=2))
    assert refused.value.details == {"limit": "schema_max_enum", "max": 2}


def test_the_size_is_the_compact_json_size() -> None:
    schema = obj(a={"type": "string", "description": "é" * 100, "enum": ["x", None, True, 1.5, -2]})
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode())
    check_shape(schema, SchemaBounds(max_bytes=size))
    with pytest.raises(SchemaShapeError):
        check_shape(schema, SchemaBounds(max_bytes=size - 1))


def test_counts_at_the_bound_pass_and_data_named_like_keywords_is_data() -> None:
    check_shape(obj(a={"type": "array", "maxItems": BOUNDS.max_repeat, "items": {"type": "string"}}))
    # A property called minItems, or a const holding one, asks for nothing.
    check_shape(obj(minItems={"type": "string"}, b={"const": {"minItems": 10**9, "pattern": "a{99999}"}}))
    # Invalid counts are the validator's to refuse, not a crash here.
    check_shape(obj(a={"type": "string", "minLength": "many", "pattern": "(("}))


@pytest.mark.parametrize(
    ("pattern", "count"),
    [
        ("^(a|aa){1000,}b$", 1000),
        ("a{2,5}", 5),
        ("a{7}", 7),
        ("(a{10}){20}", 200),
        ("((a){3}){4}x{5}", 12),
        (r"\{1000\}", 1),  # escaped braces are literals
        ("[{1000}]", 1),  # so are braces in a class
        (r"[\]{9}]{3}", 3),
        ("a{,5}", 1),  # not a quantifier in Python's syntax
        ("((unbalanced{4}", 4),
        ("a*b+c?", 1),
    ],
)
def test_pattern_repeat(pattern: str, count: int) -> None:
    assert pattern_repeat(pattern) == count


def test_the_walk_is_linear() -> None:
    # 50,000 small subschemas, well inside the size bound once it is raised: one pass, no expansion.
    wide = obj(**{f"p{i}": {"type": "string"} for i in range(50_000)})
    roomy = SchemaBounds(max_bytes=10 * 1024 * 1024, max_nodes=100_000, max_properties=100_000)
    started = time.monotonic()
    check_shape(wide, roomy)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("name", ["nda", "clinical_note", "contract"])
def test_the_built_in_schemas_are_well_inside_the_bounds(name: str) -> None:
    check_shape(get_schema(name).json_schema())
