"""The grammar sees every property as required (explicit nulls) and compact whitespace."""

from __future__ import annotations

from schemas.registry import get_schema
from workers.engines.constraints import generation_schema


def test_every_object_property_is_required_for_generation() -> None:
    schema = generation_schema(get_schema("clinical_note").json_schema())
    assert schema["required"] == list(schema["properties"])
    for name, sub in schema["$defs"].items():
        assert sub["required"] == list(sub["properties"]), name


def test_the_source_schema_is_not_modified() -> None:
    spec = get_schema("nda")
    original = spec.json_schema()
    generation_schema(original)
    assert "required" not in original
