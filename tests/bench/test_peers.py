"""The pure parts of the peers benchmark: document draw, truncation, langextract mapping, scoring, the table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import peer_grammar, peer_langextract_records, peer_report, peer_types, peers
from bench.langextract_runner import UsageCounter


def _words(text: str) -> int:
    return len(text.split())


def _extraction(cls: str, text: str, start: int | None, **attributes: Any) -> dict[str, Any]:
    return {
        "extraction_class": cls,
        "extraction_text": text,
        "attributes": attributes,
        "start": start,
        "end": None if start is None else start + len(text),
    }


def test_the_draw_is_fixed_by_the_seed_and_sorted() -> None:
    first = peer_types.choose(60, 10, 14)
    assert first == peer_types.choose(60, 10, 14)
    assert first == sorted(first) and len(set(first)) == 10 and all(0 <= i < 60 for i in first)
    assert peer_types.choose(60, 10, 15) != first
    assert peer_types.choose(3, 10, 14) == [0, 1, 2]


def test_a_document_within_the_budget_is_kept_whole() -> None:
    assert peer_grammar.truncate_to_tokens("one two three", 3, _words) == ("one two three", False)


def test_a_long_document_is_cut_at_a_word_within_the_budget() -> None:
    text = " ".join(f"word{i}" for i in range(1000))
    cut, truncated = peer_grammar.truncate_to_tokens(text, 100, _words)
    assert truncated
    assert text.startswith(cut)
    assert _words(cut) == 100  # the longest whole-word prefix that fits
    assert cut.split()[-1] == "word99"


def test_no_budget_leaves_nothing() -> None:
    assert peer_grammar.truncate_to_tokens("some text", 0, _words) == ("", True)


def test_nda_extractions_map_onto_the_nda_fields() -> None:
    extractions = [
        _extraction("jurisdiction", "State of Delaware", 900),
        _extraction("Parties", "Acme Widgets, Inc.", 120),
        _extraction("effective_date", "April 18, 2001", 40, iso_date="2001-04-18"),
        _extraction("party", "Beta  Labs LLC", 200),
        _extraction("party", "ACME WIDGETS, INC.", 950),  # the same party again, in capitals
        _extraction("party", "Example Corp.", None),  # not found in the document: dropped
        _extraction("term", "two (2) years", 600),
        _extraction("jurisdiction", "State of New York", 1200),  # a later mention does not replace the first
    ]
    assert peer_langextract_records.nda_record(extractions) == {
        "parties": ["Acme Widgets, Inc.", "Beta Labs LLC"],
        "effective_date": "2001-04-18",
        "jurisdiction": "State of Delaware",
        "term": "two (2) years",
    }


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ("April 18, 2001", None, "2001-04-18"),
        ("the 2nd day of March, 1999", None, "1999-03-02"),
        ("Sept. 1st, 2010", "not a date", "Sept. 1st, 2010"),
        ("1 June 2004", None, "2004-06-01"),
        ("06/30/2015", None, "2015-06-30"),
        ("as of the date hereof", "2012-01-05", "2012-01-05"),
        ("as of the date hereof", None, "as of the date hereof"),
    ],
    ids=["month-day-year", "ordinal-day-of", "unparsed-kept", "day-month-year", "us-numeric", "attribute", "none"],
)
def test_dates_become_iso_where_they_can(text: str, attribute: str | None, expected: str) -> None:
    assert peer_langextract_records.iso_date(text, attribute) == expected


def test_mapped_nda_records_are_scored_by_our_kleister_scorer() -> None:
    ev = peer_types.evaluation()
    record = peer_langextract_records.nda_record(
        [
            _extraction("party", "NIKE, Inc.", 10),
            _extraction("effective_date", "April 18, 2001", 50),
            _extraction("jurisdiction", "the State of New York", 400),
            _extraction("term", "three (3) years", 300),
        ]
    )
    labels = ev.nda_record_to_labels(record)
    assert sorted(labels) == [
        "effective_date=2001-04-18",
        "jurisdiction=New_York",
        "party=Nike_Inc.",
        "term=3_years",
    ]


def test_clinical_extractions_map_onto_the_clinical_note_fields() -> None:
    extractions = [
        _extraction("chief_complaint", "knee pain", 5),
        _extraction("age", "fifty-six year old", 30),
        _extraction("patient_sex", "woman", 50),
        _extraction("diagnoses", "osteoarthritis", 80),
        _extraction("medication", "meloxicam", 100, dose="15 mg", frequency=["daily"]),
        _extraction("vital", "132/84", 140, kind="Blood pressure"),
        _extraction("vital", "99", 160, kind="pulse ox"),  # a kind outside the schema: dropped
        _extraction("allergy", "latex", 180),
        _extraction("procedure", "x-ray", 200),
        _extraction("follow_up", "in 6 weeks", 220),
        _extraction("chief_complaint", "back pain", 300),
    ]
    record = peer_langextract_records.clinical_record(extractions)
    assert record["patient_age"] == 56
    assert record["patient_sex"] == "female"
    assert record["chief_complaint"] == "knee pain"
    assert record["diagnoses"] == ["osteoarthritis"]
    assert record["medications"] == [{"name": "meloxicam", "dose": "15 mg", "route": None, "frequency": "daily"}]
    assert record["vitals"] == {
        "blood_pressure": "132/84",
        "heart_rate": None,
        "temperature": None,
        "respiratory_rate": None,
        "oxygen_saturation": None,
    }
    assert (record["allergies"], record["procedures"], record["follow_up"]) == (["latex"], ["x-ray"], "in 6 weeks")
    shape = peer_types.evaluation().clinical_record_to_gold_shape(record)
    assert shape == {"patient_age": 56, "patient_sex": "female", "chief_complaint": "knee pain"}


@pytest.mark.parametrize(
    ("text", "years", "expected"),
    [("45-year-old", "45", 45), ("45-year-old", None, 45), ("thirty two", None, 32), ("adult", None, None)],
)
def test_age_in_years(text: str, years: str | None, expected: int | None) -> None:
    assert peer_langextract_records.age_years(text, years) == expected


@pytest.mark.parametrize(
    ("text", "sex", "expected"),
    [("male", "male", "male"), ("Mrs. Jones", None, "female"), ("he reports", None, "male"), ("patient", None, None)],
)
def test_patient_sex(text: str, sex: str | None, expected: str | None) -> None:
    assert peer_langextract_records.patient_sex(text, sex) == expected


def _summary(system: str, micro_f1: float, seconds: float, **kw: Any) -> peer_report.Summary:
    base: dict[str, Any] = {
        "dataset": "kleister",
        "system": system,
        "documents": 2,
        "failures": {},
        "micro_f1": micro_f1,
        "field_f1": {"party": micro_f1, "term": 1.0},
        "pages": 10,
        "seconds": seconds,
        "prompt_tokens": 1000,
        "completion_tokens": 100,
    }
    return peer_report.Summary(**(base | kw))


def test_the_table_has_ratios_to_abstractor_and_aligned_columns() -> None:
    rows = peer_report.format_table(
        [
            _summary("abstractor", 0.8, 20.0),
            _summary("llamacpp_grammar", 0.4, 80.0, failures={"timeout": 1, "invalid_json": 1}, truncated=2),
            _summary("langextract", 0.6, 40.0, prompt_tokens=None, completion_tokens=None),
        ]
    )
    assert len(rows) == 5 and len({len(r) for r in rows}) == 1
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header == list(peer_report.TABLE_COLUMNS)
    cells = {r.split("|")[2].strip(): [c.strip() for c in r.strip("|").split("|")] for r in rows[2:]}
    assert cells["abstractor"][9:11] == ["1.00", "1.00"]
    grammar = cells["llamacpp_grammar"]
    assert grammar[3] == "2 (invalid_json 1, timeout 1)"
    assert grammar[5] == "party 0.400, term 1.000"
    assert grammar[6] == "8.00" and grammar[9:12] == ["0.50", "4.00", "truncated 2/2"]
    assert cells["langextract"][7:9] == ["n/a", "n/a"]


def test_without_abstractor_the_ratios_are_not_available() -> None:
    rows = peer_report.format_table([_summary("langextract", 0.6, 40.0)])
    assert [c.strip() for c in rows[2].strip("|").split("|")][9:11] == ["n/a", "n/a"]


def test_notes_say_how_much_text_a_system_saw_and_how_many_answers_were_cut() -> None:
    summary = _summary(
        "llamacpp_grammar", 0.4, 80.0, truncated=1, text_share=0.625, requests=40, cut_answers=3, load=2.25
    )
    assert peer_report.notes(summary) == "truncated 1/2, 62% of the text seen; 3/40 answers hit max_tokens; load 2.2"
    assert peer_report.notes(_summary("abstractor", 0.8, 20.0)) == ""


def test_summary_lines_are_the_last_lines_a_readme_quotes() -> None:
    lines = peer_report.summary_lines([_summary("abstractor", 0.81234, 23.456)])
    assert lines == ["peers kleister abstractor micro_f1=0.8123 seconds_per_page=2.35"]


def test_failed_documents_score_as_empty_and_are_counted() -> None:
    ev = peer_types.evaluation()
    gold = ["party=Acme_Inc.", "term=2_years"]
    items = [
        peer_types.Item("kleister", "a.pdf", Path("a.pdf"), gold),
        peer_types.Item("kleister", "b.pdf", Path("b.pdf"), gold),
    ]
    outcomes = [
        peer_types.Outcome(
            "x", "kleister", "a.pdf", pages=3, seconds=6.0, record={"parties": ["Acme Inc."]}, chars=800, chars_sent=300
        ),
        peer_types.Outcome("x", "kleister", "b.pdf", pages=1, seconds=2.0, chars=200, chars_sent=200, error="timeout"),
    ]
    summary = peer_report.summarize(ev, items, outcomes)
    assert summary.failures == {"timeout": 1}
    assert summary.field_f1["party"] == pytest.approx(2 / 3)  # tp 1, fn 1
    assert summary.micro_f1 == pytest.approx(2 / 5)  # tp 1, fn 3
    assert summary.seconds_per_page == pytest.approx(2.0)
    assert summary.prompt_tokens is None
    assert summary.text_share == pytest.approx(0.5)


def test_progress_lines_carry_no_extracted_values() -> None:
    outcome = peer_types.Outcome(
        "langextract", "aci", "D2N005", pages=1, seconds=3.25, record={"chief_complaint": "chest pain"}
    )
    line = peers.progress_line(1, 10, outcome)
    assert "chest" not in line
    assert line.startswith("[aci 1/10] langextract D2N005") and "seconds=3.2" in line and line.endswith("ok")


def test_systems_are_chosen_by_name() -> None:
    assert peers.parse_args(["--systems", "langextract, abstractor"]).systems == ["langextract", "abstractor"]
    with pytest.raises(SystemExit):
        peers.parse_args(["--systems", "abstractor,gpt"])


def test_the_runner_counts_the_usage_the_server_reports() -> None:
    counter = UsageCounter()

    def create(**kwargs: Any) -> Any:
        return SimpleNamespace(
            choices=[SimpleNamespace(finish_reason=kwargs["finish"])],
            usage=SimpleNamespace(prompt_tokens=kwargs["n"], completion_tokens=2),
        )

    counted = counter.wrap(create)
    assert counted(n=30, finish="stop").usage.prompt_tokens == 30
    counted(n=12, finish="length")
    assert (counter.requests, counter.prompt_tokens, counter.completion_tokens) == (2, 42, 4)
    assert counter.cut_answers == 1


def _outcome_line(system: str, name: str, **fields: Any) -> str:
    import json

    return json.dumps(peer_types.Outcome(system, "kleister", name, **fields).__dict__)


def test_a_predictions_file_is_read_back_and_a_line_cut_by_a_kill_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "peers.jsonl"
    path.write_text(
        _outcome_line("langextract", "a.pdf", pages=2, seconds=4.0, record={"parties": ["Acme Inc."]})
        + "\n"
        + _outcome_line("abstractor", "a.pdf", error="timeout")
        + "\n"
        + '{"system": "abstractor", "dataset": "kle'
    )
    kept = peers.read_predictions(path)
    assert set(kept) == {("langextract", "kleister", "a.pdf"), ("abstractor", "kleister", "a.pdf")}
    assert kept[("langextract", "kleister", "a.pdf")].record == {"parties": ["Acme Inc."]}
    assert kept[("abstractor", "kleister", "a.pdf")].error == "timeout"
    assert peers.read_predictions(tmp_path / "absent.jsonl") == {}


def test_a_broken_line_before_the_last_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    path = tmp_path / "peers.jsonl"
    path.write_text("not json\n" + _outcome_line("abstractor", "a.pdf") + "\n")
    with pytest.raises(ValueError):
        peers.read_predictions(path)


def test_a_run_whose_outcomes_are_all_kept_loads_no_system_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ev = peer_types.evaluation()
    items = peer_types.load_items(ev, "kleister", 2, 14)
    path = tmp_path / "peers.jsonl"
    lines = [
        _outcome_line(system, item.name, pages=2, seconds=4.0, record={"parties": []})
        for system in ("langextract", "abstractor")
        for item in reversed(items)  # written out of the drawn order: the table must not care
    ]
    path.write_text("\n".join(lines) + "\n")
    peers.main(["--kleister", "2", "--aci", "0", "--systems", "abstractor,langextract", "--predictions", str(path)])
    out, err = capsys.readouterr()
    assert "abstractor: every document kept" in err and "langextract: every document kept" in err
    assert "loaded in" not in err
    assert out.splitlines()[-2:] == [
        "peers kleister abstractor micro_f1=0.0000 seconds_per_page=2.00",
        "peers kleister langextract micro_f1=0.0000 seconds_per_page=2.00",
    ]
    assert len(path.read_text().splitlines()) == 4  # rewritten from what was kept, nothing appended
