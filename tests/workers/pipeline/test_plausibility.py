"""Implausible values: what a small model copies into the wrong field, seen on unseen NDAs, is moved out."""

from __future__ import annotations

import json

import pytest

from schemas.registry import get_schema
from tests.workers.pipeline.test_run import ScriptedEngine, document
from workers.pipeline.plausibility import duration_problem, implausible, party_problem, place_problem
from workers.pipeline.run import PipelineOptions, extract_document
from workers.pipeline.validation import tidy

FULL = "Teva Pharmaceutical Industries Ltd."


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Competitor", "a role or defined term, not a name"),
        ("the Recipient", "a role or defined term, not a name"),
        ("Disclosing Party", "a role or defined term, not a name"),
        ("Dear Ken", "a salutation"),
        ("Ladies and Gentlemen", "a salutation"),
        ("Deerfield, IL 60015", "an address"),
        ("an Iowa corporation", "a description, not a name"),
        ("Delaware limited liability company", "a description, not a name"),
        ("1600 Amphitheatre Parkway", "an address"),
        ("200 Park Avenue, Suite 1700", "an address"),
        ("TEVA", "a short form of another party"),
        ("Teva", "a short form of another party"),
        ("IN WITNESS WHEREOF, the undersigned have executed this Agreement", "a sentence, not a name"),
    ],
)
def test_values_that_cannot_be_a_party(value: str, reason: str) -> None:
    assert party_problem(value, [FULL]) == reason


@pytest.mark.parametrize(
    "value",
    [
        FULL,
        "NIKE, Inc.",
        "Eric Dean Sprunk",
        "R. J. Seifert Enterprises",
        "Kite Pharma",
        "Haynes Wire Company",  # a name capitalises its "Company"
        "Progress Software Corporation",
        "Sir Richard Branson",
    ],
)
def test_names_stay(value: str) -> None:
    assert party_problem(value, [FULL, "Gilead Sciences, Inc."]) is None


def test_a_clause_is_not_a_jurisdiction_and_a_duration_must_read_as_one() -> None:
    clause = "WitNESS WHEREOF, each of the undersigned entities has caused this Agreement to be signed"
    assert place_problem(clause) == "a clause, not a place"
    assert place_problem("the State of New York") is None
    assert duration_problem("until terminated by either party") == "not a length of time"
    assert duration_problem("two (2) years from the Effective Date") is None


def test_padding_and_no_break_spaces_are_tidied_before_anything_else() -> None:
    assert tidy({"parties": [" NIKE,\u00a0Inc. ", "  "], "term": " ", "n": 3}) == {
        "parties": ["NIKE, Inc."],
        "term": None,
        "n": 3,
    }


def test_the_pipeline_moves_implausible_values_out_and_flags_them() -> None:
    answer = {
        "parties": ["NIKE, Inc.", "EDS", "Eric Dean Sprunk", "Recipient"],
        "effective_date": "2001-04-18",
        "jurisdiction": "Oregon",
        "term": None,
    }
    engine = ScriptedEngine([(json.dumps(answer), "stop")])
    record = extract_document(document(), get_schema("nda"), engine, PipelineOptions())
    assert record["data"]["parties"] == ["NIKE, Inc.", "Eric Dean Sprunk"]
    assert sorted(record["rejected"].values()) == ["EDS", "Recipient"]
    odd = {f["path"]: f["message"] for f in record["flags"] if f["code"] == "implausible_value"}
    assert set(odd) == set(record["rejected"])
    assert "NIKE" not in " ".join(odd.values())  # reasons name the problem, never the value
    assert implausible(record["data"], get_schema("nda").json_schema()) == {}
