"""The registry names and versions the built-in schemas; "not stated" is null or an empty list."""

from __future__ import annotations

import pytest

from schemas.errors import UnknownSchemaError
from schemas.registry import get_schema, list_schemas


@pytest.mark.parametrize("ref", ["nda", "nda@1", "contract@1", "clinical_note"], ids=str)
def test_known_refs_resolve(ref: str) -> None:
    spec = get_schema(ref)
    assert spec.ref == f"{ref.split('@')[0]}@1"


@pytest.mark.parametrize(
    "ref", ["nope", "nda@2", "nda@x", ""], ids=["unknown", "no-such-version", "bad-version", "empty"]
)
def test_unknown_refs_are_refused(ref: str) -> None:
    with pytest.raises(UnknownSchemaError):
        get_schema(ref)


@pytest.mark.parametrize("spec", list_schemas(), ids=lambda s: s.ref)
def test_every_field_may_be_absent(spec) -> None:  # type: ignore[no-untyped-def]
    empty = spec.model.model_validate({})
    for name, value in empty.model_dump().items():
        assert value in (None, []), f"{spec.ref}.{name} has no 'not stated' value"


@pytest.mark.parametrize("spec", list_schemas(), ids=lambda s: s.ref)
def test_worked_example_is_valid_and_not_empty(spec) -> None:  # type: ignore[no-untyped-def]
    record = spec.model.model_validate(spec.example_record)
    assert any(v not in (None, []) for v in record.model_dump().values())
    assert spec.example_document and len(spec.example_document) > 100


def test_nda_carries_the_kleister_fields() -> None:
    assert set(get_schema("nda").model.model_fields) == {"parties", "effective_date", "jurisdiction", "term"}


@pytest.mark.parametrize("bad", ["2001-02-30", "18 April 2001", "2001-4-18"], ids=str)
def test_dates_must_be_real_iso_dates(bad: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        get_schema("nda").model.model_validate({"effective_date": bad})
