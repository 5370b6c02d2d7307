"""Grounding: evidence points at exact text inside one page; typed values find their written forms."""

from __future__ import annotations

import time
from pathlib import Path

import pypdf
import pytest

from workers.documents.model import Document
from workers.documents.text import join_pages
from workers.pipeline.grounding import (
    NOT_FOUND,
    WEAK_MATCH,
    Evidence,
    SourceIndex,
    ground_record,
    normalize_text,
    number_to_words,
    parse_duration,
    words_to_number,
)


def make_doc(*pages: str) -> Document:
    text, spans = join_pages(list(pages))
    return Document(text=text, pages=spans, media_type="text/plain", sha256="0" * 64, size_bytes=len(text))


def pdf_doc(path: Path) -> Document:
    reader = pypdf.PdfReader(path)
    text, spans = join_pages([p.extract_text() or "" for p in reader.pages])
    return Document(
        text=text, pages=spans, media_type="application/pdf", sha256="0" * 64, size_bytes=path.stat().st_size
    )


def check_invariant(doc: Document, evidence: dict[str, list[Evidence]]) -> None:
    for items in evidence.values():
        for e in items:
            assert e.text == doc.text[e.start : e.end]
            page = doc.page(e.page)
            assert page.start <= e.start < e.end <= page.end
            assert e.to_dict() == {
                "page": e.page,
                "start": e.start,
                "end": e.end,
                "text": e.text,
                "match": e.match,
            }


def test_exact_match_respects_word_boundaries() -> None:
    doc = make_doc("In 2050 a female patient, aged 50, was seen.")
    evidence, flags = ground_record({"age": 50, "sex": "female"}, doc)
    check_invariant(doc, evidence)
    assert [(e.text, e.match) for e in evidence["age"]] == [("50", "exact")]
    assert evidence["age"][0].start == doc.text.index("50,")
    assert flags == []
    # "male" is inside "female" but is not a word there; its cue words are absent too.
    _, flags = ground_record({"sex": "male"}, doc)
    assert [f.code for f in flags] == [NOT_FOUND]


def test_normalized_match_maps_back_to_exact_offsets() -> None:
    doc = make_doc("PARTIES:\nEric Dean Sprunk and\nNIKE,   INC., divisions and affiliates")
    evidence, flags = ground_record({"parties": ["Nike Inc.", "eric dean  SPRUNK"]}, doc)
    check_invariant(doc, evidence)
    assert flags == []
    assert evidence["parties.0"][0].text == "NIKE,   INC."
    assert evidence["parties.0"][0].match == "normalized"
    assert evidence["parties.1"][0].text == "Eric Dean Sprunk"


def test_no_match_crosses_a_page_break() -> None:
    doc = make_doc("The governing law is New", "York law, as amended.")
    evidence, flags = ground_record({"jurisdiction": "New York"}, doc)
    assert evidence == {}
    assert [f.code for f in flags] == [NOT_FOUND]


@pytest.mark.parametrize(
    "written",
    [
        "April 18, 2001",
        "18 April 2001",
        "April 18th, 2001",
        "18th day of April, 2001",
        "eighteenth day of April, 2001",
        "4/18/2001",
        "04/18/01",
        "Apr. 18, 2001",
        "April 2001",
    ],
    ids=lambda s: s.replace(" ", "_"),
)
def test_iso_dates_find_their_written_forms(written: str) -> None:
    doc = make_doc(f"This Agreement is made as of {written} by the parties.")
    evidence, flags = ground_record({"effective_date": "2001-04-18"}, doc)
    check_invariant(doc, evidence)
    assert flags == []
    (e,) = evidence["effective_date"]
    assert e.match == "normalized"
    assert e.text.replace(".", "") == written.replace(".", "")


def test_a_date_one_day_off_is_not_found() -> None:
    doc = make_doc("Dated April 19, 2001.")
    _, flags = ground_record({"effective_date": "2001-04-18"}, doc)
    assert [f.code for f in flags] == [NOT_FOUND]


TYPED_CASES = {
    "age-words": (50, "The patient is a fifty year old woman.", "fifty", "normalized"),
    "age-hyphen-words": (51, "A fifty-one year old man.", "fifty-one", "normalized"),
    "age-digits": (50, "Martha is a 50-year-old female.", "50", "exact"),
    "sex-word": ("female", "A 50-year-old female.", "female", "exact"),
    "sex-cue-she": ("female", "She reports chest pain.", "She", "normalized"),
    "sex-cue-mr": ("male", "Mr. Perez is here today.", "Mr", "normalized"),
    "duration-paren": ("3 years", "for a period of three (3) years after", "three (3) years", "normalized"),
    "years-as-months": ("3 years", "for thirty-six months after", "thirty-six months", "normalized"),
    "duration-words": ("2 years", "for two years after", "two years", "normalized"),
    "duration-nbsp": (
        "18 months",
        "until eighteen (18)\xa0months hence",
        "eighteen (18)\xa0months",
        "normalized",
    ),
    "inc-incorporated": ("Escalade Inc.", "ESCALADE, INCORPORATED", "ESCALADE, INCORPORATED", "normalized"),
    "llc-dotted": (
        "Z Capital LLC",
        "Z Capital, L.L.C., a Delaware company",
        "Z Capital, L.L.C.",
        "normalized",
    ),
}


@pytest.mark.parametrize(("value", "text", "expected", "kind"), TYPED_CASES.values(), ids=TYPED_CASES.keys())
def test_typed_values_find_written_forms(value: object, text: str, expected: str, kind: str) -> None:
    doc = make_doc(text)
    evidence, flags = ground_record({"v": value}, doc)
    check_invariant(doc, evidence)
    assert flags == []
    assert evidence["v"][0].text == expected
    assert evidence["v"][0].match == kind


def test_fuzzy_match_is_flagged_weak() -> None:
    doc = make_doc("1. Covenant.\n(a) Competition Restriction. During the term of employment ...")
    evidence, flags = ground_record({"clause": "Competition Restricton"}, doc)
    check_invariant(doc, evidence)
    assert evidence["clause"][0].match == "fuzzy"
    assert evidence["clause"][0].text == "Competition Restriction"
    assert [(f.path, f.code) for f in flags] == [("clause", WEAK_MATCH)]


def test_not_stated_values_get_nothing_and_missing_ones_a_flag() -> None:
    doc = make_doc("Blood pressure 120/80. Lisinopril 20 mg daily.")
    record = {
        "patient_age": None,
        "diagnoses": [],
        "signed": True,
        "chief_complaint": "",
        "medications": [{"name": "lisinopril", "dose": "20 mg"}, {"name": "metformin", "dose": "500 mg"}],
        "vitals": {"blood_pressure": "120/80", "heart_rate": None},
    }
    evidence, flags = ground_record(record, doc)
    check_invariant(doc, evidence)
    assert set(evidence) == {"medications.0.name", "medications.0.dose", "vitals.blood_pressure"}
    assert {(f.path, f.code) for f in flags} == {
        ("medications.1.name", NOT_FOUND),
        ("medications.1.dose", NOT_FOUND),
    }
    assert all("metformin" not in f.message and "500" not in f.message for f in flags)


def test_all_occurrences_up_to_three_by_position() -> None:
    doc = make_doc("NIKE one. NIKE two.", "NIKE three. NIKE four.")
    evidence, _ = ground_record({"party": "NIKE"}, doc)
    check_invariant(doc, evidence)
    assert [e.page for e in evidence["party"]] == [1, 1, 2]
    starts = [e.start for e in evidence["party"]]
    assert starts == sorted(starts)


def test_spans_are_preferred_with_whole_document_fallback() -> None:
    doc = make_doc("Delaware is mentioned here.", "The laws of Delaware govern.")
    page2 = (doc.pages[1].start, doc.pages[1].end)
    evidence, _ = ground_record({"j": "Delaware"}, doc, spans=[page2])
    assert [e.page for e in evidence["j"]] == [2]
    evidence, _ = ground_record({"j": "Oregon law"}, make_doc("Oregon law applies."), spans=[(100, 200)])
    assert evidence["j"][0].text == "Oregon law"


def test_number_words_round_trip() -> None:
    for n in (0, 7, 13, 21, 50, 99, 100, 118, 999, 1001, 36000):
        assert words_to_number(normalize_text(number_to_words(n)).split()) == n
    assert parse_duration("three (3) years") == (3, "year")
    assert parse_duration("a period of twenty-four months") == (24, "month")
    assert parse_duration("one year") == (1, "year")
    assert parse_duration("a year") == (1, "year")
    assert parse_duration("until terminated") is None


def test_real_kleister_pdf_gold_values_ground(kleister_dir: Path) -> None:
    doc = pdf_doc(kleister_dir / "00a1d238e37ac225b8045a97953e845d.pdf")
    record = {
        "parties": ["Eric Dean Sprunk", "Nike, Inc."],
        "effective_date": "2001-04-18",
        "jurisdiction": "Oregon",
        "term": "2 years",
    }
    evidence, flags = ground_record(record, doc)
    check_invariant(doc, evidence)
    assert flags == []
    assert evidence["parties.1"][0].text == "NIKE, Inc."
    assert evidence["effective_date"][0].text == "04/18/01"
    assert evidence["term"][0].text == "two (2)\xa0years"


def test_sixty_page_document_grounds_twenty_values_fast(kleister_dir: Path) -> None:
    pages: list[str] = []
    for pdf in sorted(kleister_dir.glob("*.pdf")):
        pages += [p.extract_text() or "" for p in pypdf.PdfReader(pdf).pages]
        if len(pages) >= 60:
            break
    doc = make_doc(*pages[:60])
    assert len(doc.text) > 150_000
    values = ["Delaware", "2012-08-01", "Nike, Inc.", "three years", "Kimberly Gold Mines", "John Q. Nobody",
              "18 months", "New York", "Confidential Information", "Evaluation Material", "2 years",
              "Gilead Sciences, Inc.", "an unlikely phrase nowhere", "2001-04-18", "Oregon", "Section 5",
              "Receiving Party", "Cisco Systems", "12 months", "the State of California"]  # fmt: skip
    record = {f"f{i}": v for i, v in enumerate(values)}
    started = time.perf_counter()
    evidence, _ = ground_record(record, doc, index=SourceIndex(doc))
    elapsed = time.perf_counter() - started
    check_invariant(doc, evidence)
    assert elapsed < 1.0, f"grounding took {elapsed:.2f}s"


def test_long_clause_with_a_typo_matches_fuzzily_on_whole_words() -> None:
    clause = (
        "This Agreement, and EMPLOYEE\u2019s employment hereunder, shall be construed according to the\n"
        "laws of the State of Oregon."
    )
    doc = make_doc("Preamble text.", f"(d) Applicable Law. {clause} Venue lies in Oregon courts.")
    value = (
        "This Agreement and Employees employment hereunder shall be construed acording to the laws of "
        "the State of Oregon"
    )
    evidence, flags = ground_record({"law": value}, doc)
    check_invariant(doc, evidence)
    (e,) = evidence["law"]
    assert (e.page, e.match) == (2, "fuzzy")
    assert e.text.startswith("This Agreement") and e.text.endswith("Oregon")
    assert [f.code for f in flags] == [WEAK_MATCH]
