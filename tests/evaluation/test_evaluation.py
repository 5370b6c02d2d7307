"""Evaluation: the scorer on hand-made cases, the gold labels' round trip, and the real data loaders."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest
from pydantic import Field

from evaluation import (
    DatasetError,
    FieldScores,
    clinical_record_to_gold_shape,
    detect_dataset,
    format_report,
    load_aci,
    load_kleister,
    nda_record_to_labels,
    print_report,
    score_aci,
    score_kleister,
    score_label_sets,
)
from evaluation.aci import chief_complaint_matches
from evaluation.kleister import labels_to_nda_record, normalize_jurisdiction, normalize_term
from evaluation.scoring import micro
from schemas.nda import NDA
from workers.documents.model import Document
from workers.documents.text import join_pages
from workers.pipeline.chunking import chunk_document
from workers.pipeline.grounding import SourceIndex, ground_record
from workers.pipeline.merging import merge_records


@pytest.fixture(scope="module")
def kleister(shared_data: Path) -> list[tuple[Path, list[str]]]:
    return load_kleister(shared_data / "kleister-nda")


# --------------------------------------------------------------------------- scoring


def test_field_scores_ratios() -> None:
    s = FieldScores(tp=3, fp=1, fn=2)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.6)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert FieldScores().f1 == 1.0  # nothing expected, nothing predicted
    assert FieldScores(fp=2).f1 == 0.0 and FieldScores(fp=2).recall == 0.0
    assert FieldScores(1, 0, 0) + FieldScores(0, 1, 1) == FieldScores(1, 1, 1)


def test_multilabel_f1_on_hand_made_documents() -> None:
    pairs = [
        # tp: date, party=NIKE_INC. (case-insensitive); fp: party=Acme; fn: jurisdiction
        (["effective_date=2001-04-18", "party=NIKE_INC.", "party=Acme"],
         ["effective_date=2001-04-18", "party=Nike_Inc.", "jurisdiction=Oregon"]),
        # tp: term; fp: jurisdiction=Delaware; fn: jurisdiction=New_York
        (["term=2_years", "jurisdiction=Delaware"], ["term=2_years", "jurisdiction=New_York"]),
    ]  # fmt: skip
    scores = score_kleister(pairs)
    assert scores["effective_date"] == FieldScores(1, 0, 0)
    assert scores["party"] == FieldScores(1, 1, 0)
    assert scores["jurisdiction"] == FieldScores(0, 1, 2)
    assert scores["term"] == FieldScores(1, 0, 0)
    total = micro(scores)
    assert total == FieldScores(3, 2, 2)
    assert total.f1 == pytest.approx(0.6)
    lines = format_report(scores, title="hand-made")
    assert lines[0] == "hand-made"
    assert lines[-1] == "micro_f1=0.6000"
    # Case matters only when asked to.
    assert micro(score_label_sets([(["party=A"], ["party=a"])], upper=False)).f1 == 0.0


def test_duplicate_labels_count_as_a_multiset() -> None:
    scores = score_label_sets([(["party=X"], ["party=X", "party=X"])])
    assert scores["party"] == FieldScores(1, 0, 1)


def test_print_report_prints_and_returns_lines() -> None:
    out = io.StringIO()
    lines = print_report({"f": FieldScores(1, 1, 0)}, file=out)
    assert out.getvalue().splitlines() == lines
    assert lines[-1] == "micro_f1=0.6667"
    assert [line.split()[0] for line in lines[1:-1]] == ["f", "micro"]


# --------------------------------------------------------------------------- Kleister-NDA


def test_nda_record_to_labels_follows_gold_conventions() -> None:
    record = {
        "parties": ["NIKE, Inc.", 'Eric Dean Sprunk ("EMPLOYEE")', "Heidrick & Struggles, Inc.",
                    "GTCR, L.L.C.", "Colt\u2019s Manufacturing Company LLC", "AZZ incorporated",
                    "Wynn Resorts, Limited", "NIKE INC", "Maher Albitar, M.D.", "John J. Donahoe II",
                    "Tyco Healthcare Group LP d/b/a Covidien"],
        "effective_date": "2001-04-18",
        "jurisdiction": "the laws of the State of New York",
        "term": "three (3) years",
    }  # fmt: skip
    assert nda_record_to_labels(record) == [
        "effective_date=2001-04-18",
        "jurisdiction=New_York",
        "party=Nike_Inc.",
        "party=Eric_Dean_Sprunk",
        "party=Heidrick_and_Struggles_Inc.",
        "party=Gtcr_LLC",
        "party=Colt's_Manufacturing_Company_LLC",
        "party=Azz_Inc.",
        "party=Wynn_Resorts_Ltd.",
        "party=Maher_Albitar",
        "party=John_J._Donahoe_Ii",
        "party=Tyco_Healthcare_Group_LP",
        "term=3_years",
    ]
    empty = {"parties": [], "effective_date": None, "jurisdiction": None, "term": None}
    assert nda_record_to_labels(empty) == []


@pytest.mark.parametrize(
    ("written", "label"),
    [("three (3) years", "3 years"), ("eighteen months", "18 months"), ("2 years", "2 years"),
     ("one (1) year", "1 year"), ("a period of twenty-four (24) months", "24 months"),
     ("16 days", "16 days")],
    ids=["paren", "words", "digits", "singular", "long", "days"],
)  # fmt: skip
def test_term_normalisation(written: str, label: str) -> None:
    assert normalize_term(written) == label


@pytest.mark.parametrize(
    ("written", "state"),
    [("Delaware", "Delaware"), ("State of New York", "New York"),
     ("Commonwealth of Massachusetts", "Massachusetts"), ("West Virginia", "West Virginia"),
     ("NY", "New York"), ("the laws of Georgia, USA", "Georgia")],
    ids=["bare", "state-of", "commonwealth", "west-virginia", "code", "sentence"],
)  # fmt: skip
def test_jurisdiction_normalisation(written: str, state: str) -> None:
    assert normalize_jurisdiction(written) == state


def test_kleister_loader(kleister: list[tuple[Path, list[str]]], shared_data: Path) -> None:
    assert len(kleister) == 60
    assert all(pdf.is_file() and pdf.suffix == ".pdf" for pdf, _ in kleister)
    assert load_kleister(shared_data / "kleister-nda" / "train") == kleister
    first = dict(kleister)[shared_data / "kleister-nda" / "train" / "00a1d238e37ac225b8045a97953e845d.pdf"]
    assert first == [
        "effective_date=2001-04-18",
        "jurisdiction=Oregon",
        "party=Eric_Dean_Sprunk",
        "party=Nike_Inc.",
    ]


def test_gold_labels_round_trip_through_a_record(kleister: list[tuple[Path, list[str]]]) -> None:
    """A perfect record scores (almost) 1.0: the bound the conversion puts on achievable F1."""
    pairs = [(nda_record_to_labels(labels_to_nda_record(gold)), gold) for _, gold in kleister]
    exact = sum(sorted(p) == sorted(g) for p, g in pairs)
    # One gold set names the same party twice (two companies share a name); a record's list holds it once.
    assert exact == 59
    scores = score_kleister(pairs)
    assert micro(scores).precision == 1.0
    assert format_report(scores)[-1] == "micro_f1=0.9980"
    assert format_report(score_kleister([(g, g) for _, g in kleister]))[-1] == "micro_f1=1.0000"


@pytest.mark.slow
def test_as_written_values_normalise_to_gold(kleister: list[tuple[Path, list[str]]]) -> None:
    """Each gold party and jurisdiction, as written in its PDF, converts back to the gold label."""
    found = matched = 0
    for pdf, gold in kleister:
        text, pages = join_pages([p.extract_text() or "" for p in pypdf.PdfReader(pdf).pages])
        index = SourceIndex(Document(text=text, pages=pages, media_type="application/pdf", sha256="0", size_bytes=0))
        for label in gold:
            key, _, value = label.partition("=")
            if key not in ("party", "jurisdiction"):
                continue
            evidence, _ = index.locate(value.replace("_", " "))
            if not evidence:
                continue
            found += 1
            field = "parties" if key == "party" else key
            written = [e.text for e in evidence]
            converted = {
                lab.upper() for w in written for lab in nda_record_to_labels({field: [w] if field == "parties" else w})
            }
            matched += label.upper() in converted
    assert found == 184  # all 124 parties and 60 jurisdictions are written in their PDFs
    assert matched == found


def _written_inside(index: SourceIndex, value: object, span: tuple[int, int]) -> str | None:
    """The value as written inside one chunk, if it is written there."""
    if value is None:
        return None
    found, _ = index.locate(value, [span])
    return next((e.text for e in found if span[0] <= e.start and e.end <= span[1]), None)


class UnionNDA(NDA):
    """`nda@1` with parties unioned over chunks: the oracle names a party wherever it is written, so
    this pins the merge/ground/label mechanics, not the schema's preamble-first policy."""

    parties: list[str] = Field(default_factory=list, max_length=8)


def test_oracle_chunk_records_merge_and_score_near_gold(kleister: list[tuple[Path, list[str]]]) -> None:
    """chunk -> per-chunk records an ideal model would write -> merge -> ground -> labels keeps the gold."""
    pairs = []
    for pdf, gold in kleister[:6]:
        text, pages = join_pages([p.extract_text() or "" for p in pypdf.PdfReader(pdf).pages])
        doc = Document(text=text, pages=pages, media_type="application/pdf", sha256="0", size_bytes=0)
        index = SourceIndex(doc)
        chunks = chunk_document(doc, lambda t: len(t.split()), max_tokens=600, overlap_tokens=60)
        truth = labels_to_nda_record(gold)
        parts = []
        for chunk in chunks:
            span = (chunk.start, chunk.end)
            written = [_written_inside(index, p, span) for p in truth["parties"]]
            record = {  # names and places copied as written, the date normalised to ISO
                "parties": [w for w in written if w],
                "effective_date": truth["effective_date"]
                if _written_inside(index, truth["effective_date"], span)
                else None,
                "jurisdiction": _written_inside(index, truth["jurisdiction"], span),
                "term": _written_inside(index, truth["term"], span),
            }
            parts.append((UnionNDA.model_validate(record).model_dump(mode="json"), [span]))
        merged = merge_records(parts, UnionNDA, doc, index=index)
        evidence, _ = ground_record(merged, doc, index=index)
        for items in evidence.values():
            assert all(e.text == doc.text[e.start : e.end] for e in items)
        pairs.append((nda_record_to_labels(merged), gold))
    scores = score_kleister(pairs)
    assert micro(scores).f1 >= 0.99, format_report(scores)


# --------------------------------------------------------------------------- ACI-Bench


def test_aci_loader_checks_gold_against_the_note(shared_data: Path) -> None:
    rows = load_aci(shared_data / "aci-bench")
    assert len(rows) == 67
    encounter, note, gold = rows[0]
    assert encounter == "D2N001"
    assert note.startswith("CHIEF COMPLAINT")
    assert gold == {"patient_age": 50, "patient_sex": "female", "chief_complaint": "annual exam"}
    stated = {f: sum(g[f] is not None for _, _, g in rows) for f in gold}
    # 54 ages, 65 sexes and 67 complaints in the metadata; those the note does not state are dropped.
    assert stated == {"patient_age": 48, "patient_sex": 65, "chief_complaint": 66}
    assert micro(score_aci([(g, g) for _, _, g in rows])).f1 == 1.0


def test_clinical_record_to_gold_shape() -> None:
    record = {"patient_age": 62, "patient_sex": "male", "chief_complaint": "Joint  pain", "diagnoses": ["x"]}
    assert clinical_record_to_gold_shape(record) == {
        "patient_age": 62,
        "patient_sex": "male",
        "chief_complaint": "Joint pain",
    }
    assert clinical_record_to_gold_shape({}) == dict.fromkeys(("patient_age", "patient_sex", "chief_complaint"))


@pytest.mark.parametrize(
    ("predicted", "gold", "ok"),
    [("Right knee pain", "right knee pain", True), ("knee pain", "Right knee pain", True),
     ("pain in the right knee", "right knee pain", True), ("abnormal lab finding", "abnormal labs", True),
     ("headache", "back pain", False), ("follow-up", "annual exam", False), ("knee pain", "back pain", False)],
    ids=["case", "contained", "reordered", "plural", "different", "unrelated", "other-site"],
)  # fmt: skip
def test_chief_complaint_lenient_match(predicted: str, gold: str, ok: bool) -> None:
    assert chief_complaint_matches(predicted, gold) is ok


def test_aci_scoring_counts() -> None:
    gold = {"patient_age": 50, "patient_sex": "female", "chief_complaint": "annual exam"}
    predicted = {"patient_age": 51, "patient_sex": None, "chief_complaint": "Annual exam."}
    extra = ({"patient_age": 40, "patient_sex": None, "chief_complaint": None}, dict.fromkeys(gold))
    scores = score_aci([(predicted, gold), extra])
    assert scores["patient_age"] == FieldScores(0, 2, 1)
    assert scores["patient_sex"] == FieldScores(0, 0, 1)
    assert scores["chief_complaint"] == FieldScores(1, 0, 0)


# --------------------------------------------------------------------------- dataset detection


def test_detect_dataset(shared_data: Path, tmp_path: Path) -> None:
    assert detect_dataset(shared_data / "kleister-nda") == "kleister"
    assert detect_dataset(shared_data / "kleister-nda" / "train") == "kleister"
    assert detect_dataset(shared_data / "aci-bench") == "aci"
    with pytest.raises(DatasetError):
        detect_dataset(tmp_path)
    with pytest.raises(DatasetError):
        detect_dataset(tmp_path / "missing")
