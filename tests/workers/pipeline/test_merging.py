"""Merging: lists unioned without near-duplicates, scalars decided by the source, and the result validates."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.clinical_note import ClinicalNote
from schemas.nda import NDA
from workers.documents.model import Document
from workers.documents.text import join_pages
from workers.pipeline.merging import merge_records

NDA_PAGES = [
    "MUTUAL NON-DISCLOSURE AGREEMENT\nThis Agreement is made as of April 18, 2001 between "
    "NIKE, Inc. (\u201cNIKE\u201d) and Eric Dean Sprunk (\u201cEmployee\u201d).",
    "The obligations last for a period of two (2) years. This Agreement is governed by the laws of the "
    "State of Oregon.",
    "IN WITNESS WHEREOF. NIKE, Inc. By: /s/ Jeffrey M. Cava. Dated 04/18/01.",
]


def make_doc(*pages: str) -> Document:
    text, spans = join_pages(list(pages))
    return Document(text=text, pages=spans, media_type="text/plain", sha256="0" * 64, size_bytes=len(text))


def page_span(doc: Document, number: int) -> list[tuple[int, int]]:
    p = doc.page(number)
    return [(p.start, p.end)]


def nda(**fields: Any) -> dict[str, Any]:
    return NDA.model_validate(fields).model_dump(mode="json")


class UnionNDA(NDA):
    """The NDA fields with the default merge policy (lists unioned), to pin that policy."""

    parties: list[str] = Field(default_factory=list, max_length=8)


def union_nda(**fields: Any) -> dict[str, Any]:
    return UnionNDA.model_validate(fields).model_dump(mode="json")


def test_lists_are_unioned_without_near_duplicates() -> None:
    doc = make_doc(*NDA_PAGES)
    parts = [
        (union_nda(parties=["NIKE, Inc.", "Eric Dean Sprunk"]), page_span(doc, 1)),
        (union_nda(parties=["Nike Inc"]), page_span(doc, 2)),
        (union_nda(parties=["eric dean sprunk", "Jeffrey M. Cava"]), page_span(doc, 3)),
    ]
    merged = merge_records(parts, UnionNDA, doc)
    assert merged["parties"] == ["NIKE, Inc.", "Eric Dean Sprunk", "Jeffrey M. Cava"]
    UnionNDA.model_validate(merged)


def test_scalar_that_grounds_beats_a_more_frequent_one() -> None:
    doc = make_doc(*NDA_PAGES)
    parts = [
        (nda(jurisdiction="Delaware", term="3 years"), page_span(doc, 1)),
        (nda(jurisdiction="Delaware", term="2 years"), page_span(doc, 2)),
        (nda(jurisdiction="Oregon"), page_span(doc, 2)),
    ]
    merged = merge_records(parts, NDA, doc)
    assert merged["jurisdiction"] == "Oregon"  # written in the source; "Delaware" is not
    assert merged["term"] == "2 years"  # grounds as "two (2) years"


def test_exact_beats_normalized_then_frequency_then_earliest() -> None:
    doc = make_doc(*NDA_PAGES)
    spans = page_span(doc, 1)
    merged = merge_records([(nda(effective_date="2001-04-18", jurisdiction="oregon"), spans),
                            (nda(jurisdiction="Oregon"), spans)], NDA, doc)  # fmt: skip
    assert merged["jurisdiction"] == "Oregon"  # exact wins over the case-folded spelling
    assert merged["effective_date"] == "2001-04-18"
    # Neither grounds: the value most chunks agree on, and between equals the earliest chunk's.
    parts = [(nda(term="5 years"), spans), (nda(term="7 years"), spans), (nda(term="7 years"), spans)]
    assert merge_records(parts, NDA, doc)["term"] == "7 years"
    parts = [(nda(term="5 years"), spans), (nda(term="7 years"), spans)]
    assert merge_records(parts, NDA, doc)["term"] == "5 years"


def test_none_only_when_no_chunk_states_it() -> None:
    doc = make_doc(*NDA_PAGES)
    parts = [
        (nda(), page_span(doc, 1)),
        (nda(jurisdiction="Oregon"), page_span(doc, 2)),
        (nda(jurisdiction=None), page_span(doc, 3)),
    ]
    merged = merge_records(parts, NDA, doc)
    assert merged == {"parties": [], "effective_date": None, "jurisdiction": "Oregon", "term": None}
    assert merge_records([], NDA, doc) == NDA().model_dump(mode="json")


def test_list_over_its_limit_keeps_the_grounded_items() -> None:
    doc = make_doc(*NDA_PAGES)
    invented = [f"Invented Party {i}" for i in range(8)]
    parts = [
        (union_nda(parties=invented), page_span(doc, 1)),
        (union_nda(parties=["NIKE, Inc.", "Eric Dean Sprunk"]), page_span(doc, 1)),
    ]
    merged = merge_records(parts, UnionNDA, doc)
    assert len(merged["parties"]) == 8
    assert {"NIKE, Inc.", "Eric Dean Sprunk"} <= set(merged["parties"])
    UnionNDA.model_validate(merged)


def test_objects_merge_by_name_and_fill_missing_fields() -> None:
    doc = make_doc(
        "A 62-year-old man. Blood pressure 130/85, heart rate 72.\n"
        "Medications: Lisinopril 20 mg by mouth daily. Metformin 500 mg twice a day.",
        "Plan: continue lisinopril. Follow up in 2 weeks.",
    )
    one = ClinicalNote.model_validate(
        {
            "patient_age": 62,
            "medications": [{"name": "Lisinopril", "dose": "20 mg"}],
            "vitals": {"blood_pressure": "130/85"},
        }
    ).model_dump(mode="json")
    two = ClinicalNote.model_validate(
        {
            "patient_sex": "male",
            "medications": [
                {"name": "lisinopril", "route": "by mouth", "frequency": "daily"},
                {"name": "Metformin", "dose": "500 mg", "frequency": "twice a day"},
            ],
            "vitals": {"heart_rate": "72"},
            "follow_up": "in 2 weeks",
        }
    ).model_dump(mode="json")
    merged = merge_records([(one, page_span(doc, 1)), (two, page_span(doc, 2))], ClinicalNote, doc)
    ClinicalNote.model_validate(merged)
    assert merged["patient_age"] == 62 and merged["patient_sex"] == "male"
    assert merged["medications"] == [
        {"name": "Lisinopril", "dose": "20 mg", "route": "by mouth", "frequency": "daily"},
        {"name": "Metformin", "dose": "500 mg", "route": None, "frequency": "twice a day"},
    ]
    assert merged["vitals"]["blood_pressure"] == "130/85" and merged["vitals"]["heart_rate"] == "72"
    assert merged["follow_up"] == "in 2 weeks"


def test_a_name_with_and_without_its_legal_form_is_one_party_and_the_complete_one_wins() -> None:
    doc = make_doc("This Agreement is between Kite Pharma and Gilead. KITE PHARMA, INC. By: its officer.")
    parts = [
        (union_nda(parties=["Kite Pharma", "Gilead"]), [(0, len(doc.text))]),
        (union_nda(parties=["KITE PHARMA, INC."]), [(0, len(doc.text))]),
    ]
    assert merge_records(parts, UnionNDA, doc)["parties"] == ["KITE PHARMA, INC.", "Gilead"]


def test_fragments_and_misspellings_of_a_name_fold_into_one_entry() -> None:
    text = "Agreement between Sears, Roebuck and Co. and Altimo Holdings & Investments Limited (Altimo)."
    doc = make_doc(text)
    whole = [(0, len(doc.text))]
    parts = [
        (union_nda(parties=["Sears", "Roebuck", "Co."]), whole),
        (union_nda(parties=["Sears, Roebuck and Co.", "Altimo Holding & Investment Limited"]), whole),
        (union_nda(parties=["Altimo Holdings & Investments Limited"]), whole),
    ]
    assert merge_records(parts, UnionNDA, doc)["parties"] == [
        "Sears, Roebuck and Co.",
        "Altimo Holdings & Investments Limited",
    ]


def test_distinct_parties_are_kept() -> None:
    doc = make_doc("Agreement between Kite Pharma, Inc. and Gilead Sciences, Inc.")
    parts = [(nda(parties=["Kite Pharma, Inc.", "Gilead Sciences, Inc."]), [(0, len(doc.text))])]
    assert merge_records(parts, NDA, doc)["parties"] == ["Kite Pharma, Inc.", "Gilead Sciences, Inc."]


def test_parties_come_whole_from_the_first_chunk_that_states_them() -> None:
    doc = make_doc(*NDA_PAGES)
    parts = [
        (nda(parties=[]), page_span(doc, 1)),
        (nda(parties=["NIKE, Inc.", "Eric Dean Sprunk"]), page_span(doc, 1)),
        (nda(parties=["Jeffrey M. Cava"]), page_span(doc, 3)),  # a signatory on the signature page
    ]
    assert merge_records(parts, NDA, doc)["parties"] == ["NIKE, Inc.", "Eric Dean Sprunk"]


def test_a_chunk_whose_parties_are_all_found_nowhere_does_not_hide_the_real_ones() -> None:
    doc = make_doc(*NDA_PAGES)
    parts = [
        # Copied whole from the prompt's worked example: neither name is in this document.
        (nda(parties=["Orchard Valley Instruments, Inc.", "Tomasz Wierzbicki"]), page_span(doc, 1)),
        (nda(parties=["NIKE, Inc.", "Eric Dean Sprunk"]), page_span(doc, 1)),
        (nda(parties=["Jeffrey M. Cava"]), page_span(doc, 3)),
    ]
    assert merge_records(parts, NDA, doc)["parties"] == ["NIKE, Inc.", "Eric Dean Sprunk"]
    # When no chunk states a party found in the source, the earliest still wins (and grounding flags it).
    unfound = [
        (nda(parties=["Orchard Valley Instruments, Inc."]), page_span(doc, 1)),
        (nda(parties=["Helen Marsh"]), page_span(doc, 3)),
    ]
    assert merge_records(unfound, NDA, doc)["parties"] == ["Orchard Valley Instruments, Inc."]
