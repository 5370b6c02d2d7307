"""Party names completed from the source: the legal form after the comma that a small model leaves off."""

from __future__ import annotations

import json

import pytest

from schemas.registry import get_schema
from tests.workers.pipeline.test_run import ScriptedEngine, document
from workers.pipeline.names import complete_party_names, legal_form_after
from workers.pipeline.run import PipelineOptions, extract_document

PREAMBLE = (
    "This Agreement is made between Gilead Sciences, Inc., a Delaware corporation, and Kite Pharma, Inc. "
    '("Kite"), and Acme Holdings,\nL.L.C. and Eric Dean Sprunk. Gilead Sciences shall pay. KiteCo is unrelated.'
)


@pytest.mark.parametrize(
    ("value", "completed"),
    [
        ("Gilead Sciences", "Gilead Sciences, Inc."),
        ("Kite Pharma", "Kite Pharma, Inc."),
        ("Acme Holdings", "Acme Holdings, L.L.C."),  # a line break inside: whitespace collapsed
        ("Gilead Sciences, Inc.", None),  # already whole
        ("Eric Dean Sprunk", None),  # no legal form after it
        ("Kite", None),  # followed by a quote, not a form; and "KiteCo" is not a whole-word occurrence
        ("Orchard Valley", None),  # not in the source at all
    ],
)
def test_a_legal_form_written_right_after_the_value_completes_it(value: str, completed: str | None) -> None:
    assert legal_form_after(value, PREAMBLE) == completed


def test_the_form_the_source_writes_most_often_wins() -> None:
    text = "Zeta Corp. and Zeta, Inc. and again Zeta, Inc."
    assert legal_form_after("Zeta", text) == "Zeta, Inc."


def test_only_party_kind_fields_are_completed() -> None:
    schema = get_schema("nda").json_schema()
    data = {"parties": ["Gilead Sciences", "Eric Dean Sprunk"], "jurisdiction": "Kite Pharma", "term": None}
    out = complete_party_names(data, schema, PREAMBLE)
    assert out["parties"] == ["Gilead Sciences, Inc.", "Eric Dean Sprunk"]
    assert out["jurisdiction"] == "Kite Pharma"  # a place-kind field is never extended
    assert data["parties"][0] == "Gilead Sciences"  # the input is not changed in place


def test_the_pipeline_records_the_completed_name_grounded_and_scored_like_any_other() -> None:
    answer = {"parties": ["NIKE", "Eric Dean Sprunk"], "effective_date": "2001-04-18", "jurisdiction": "Oregon"}
    engine = ScriptedEngine([(json.dumps({**answer, "term": None}), "stop")])
    record = extract_document(document(), get_schema("nda"), engine, PipelineOptions())
    assert record["data"]["parties"] == ["NIKE, Inc.", "Eric Dean Sprunk"]
    (evidence,) = record["evidence"]["parties.0"]
    assert (evidence["text"], evidence["match"]) == ("NIKE, Inc.", "exact")
    # The merged value still agrees with the chunk answer that stated it, so it carries that answer's signals.
    assert record["signals"]["values"]["parties.0"]["agreement"] == 1.0
