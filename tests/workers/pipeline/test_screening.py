"""Ungrounded values leave `data` for `rejected`, and the record stays schema-valid."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.clinical_note import ClinicalNote
from schemas.nda import NDA
from workers.pipeline.screening import screen_ungrounded


def test_list_items_are_removed_from_the_end_so_indexes_stay_right() -> None:
    data = {
        "parties": ["A Corp", "Ghost", "B LLC", "Phantom"],
        "effective_date": None,
        "jurisdiction": None,
        "term": None,
    }
    out, rejected = screen_ungrounded(data, ["parties.1", "parties.3"], NDA)
    assert out["parties"] == ["A Corp", "B LLC"]
    assert rejected == {"parties.1": "Ghost", "parties.3": "Phantom"}
    assert data["parties"] == ["A Corp", "Ghost", "B LLC", "Phantom"], "input is not mutated"


def test_scalars_become_null() -> None:
    data = {"parties": [], "effective_date": "2001-04-18", "jurisdiction": "Vermont", "term": None}
    out, rejected = screen_ungrounded(data, ["jurisdiction"], NDA)
    assert out["jurisdiction"] is None and out["effective_date"] == "2001-04-18"
    assert rejected == {"jurisdiction": "Vermont"}


def test_required_subfield_takes_its_item_with_it() -> None:
    record = ClinicalNote.model_validate(
        {
            "medications": [
                {"name": "ibuprofen", "dose": "400 mg"},
                {"name": "sumatriptan", "dose": "50 mg"},
            ]
        }
    ).model_dump(mode="json")
    out, rejected = screen_ungrounded(record, ["medications.1.name", "medications.0.dose"], ClinicalNote)
    assert [m["name"] for m in out["medications"]] == ["ibuprofen"]
    assert out["medications"][0]["dose"] is None
    assert rejected["medications.1.name"] == "sumatriptan"
    assert rejected["medications.0.dose"] == "400 mg"
    ClinicalNote.model_validate(out)


def test_a_required_top_level_field_cannot_be_screened_silently() -> None:
    from pydantic import BaseModel

    class Strict(BaseModel):
        name: str

    with pytest.raises(ValidationError):
        screen_ungrounded({"name": "x"}, ["name"], Strict)
