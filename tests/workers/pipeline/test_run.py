"""Pipeline plumbing with a scripted engine (no quality claim): retries, failures, screening, chunks.

The scripted engine answers from a queue of canned results behind the real `Engine` protocol, so
these tests pin the orchestration; extraction quality is tested with the real model elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pytest

from schemas.registry import get_schema
from workers.documents.model import Document, Page
from workers.engines.protocol import EngineInfo, GenerationRequest, GenerationResult
from workers.pipeline.run import PipelineOptions, extract_document
from workers.pipeline.validation import OutputError

TEXT = (
    "This Confidentiality Agreement is made as of April 18, 2001 between NIKE, Inc. and Eric Dean Sprunk. "
    "This Agreement shall be governed by the laws of the State of Oregon."
)


def document(text: str = TEXT, pages: int = 1) -> Document:
    size = len(text) // pages
    spans, parts, pos = [], [], 0
    for i in range(pages):
        body = text[i * size : (i + 1) * size if i < pages - 1 else len(text)]
        if i:
            pos += 3
            parts.append("\n\f\n")
        spans.append(Page(number=i + 1, start=pos, end=pos + len(body)))
        parts.append(body)
        pos += len(body)
    joined = "".join(parts)
    return Document(joined, tuple(spans), "text/plain", hashlib.sha256(joined.encode()).hexdigest(), len(joined))


class ScriptedEngine:
    """Answers each request with the next canned (text, finish_reason); records what it was asked."""

    def __init__(self, answers: Sequence[tuple[str, str]], context: int = 4096) -> None:
        self.answers = list(answers)
        self.requests: list[GenerationRequest] = []
        self.info = EngineInfo("scripted", "scripted", None, "none")
        self._context = context

    @property
    def context_tokens(self) -> int:
        return self._context

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        out = []
        for req in requests:
            self.requests.append(req)
            text, finish = self.answers.pop(0)
            out.append(GenerationResult(text, finish, 100, 20, 0.01))  # type: ignore[arg-type]
        return out


GOOD = json.dumps(
    {
        "parties": ["NIKE, Inc.", "Eric Dean Sprunk"],
        "effective_date": "2001-04-18",
        "jurisdiction": "Oregon",
        "term": None,
    }
)


def test_a_truncated_answer_is_retried_once_with_a_bigger_budget() -> None:
    engine = ScriptedEngine([('{"parties":["NI', "length"), (GOOD, "stop")])
    record = extract_document(document(), get_schema("nda"), engine, PipelineOptions(max_new_tokens=100))
    assert [r.max_tokens for r in engine.requests] == [100, 200]
    assert record["timings"]["retries"] == 1
    assert record["data"]["jurisdiction"] == "Oregon"
    assert record["flags"] == [] and record["rejected"] == {}


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        ([('{"parties":', "length"), ('{"parties":["N', "length")], "output_truncated"),
        ([("not json", "stop"), ("still not", "stop")], "invalid_json"),
        ([('{"parties":"x"}', "stop"), ('{"effective_date":"2001-02-30"}', "stop")], "validation_failed"),
    ],
    ids=["truncated-twice", "not-json-twice", "invalid-twice"],
)
def test_a_second_failure_fails_the_document_with_no_partial_record(answers: list[tuple[str, str]], code: str) -> None:
    with pytest.raises(OutputError) as info:
        extract_document(document(), get_schema("nda"), ScriptedEngine(answers))
    assert info.value.code == code


def test_values_not_in_the_source_are_rejected_and_flagged() -> None:
    invented = json.dumps(
        {"parties": ["NIKE, Inc.", "Orchard Valley Instruments, Inc."], "effective_date": "1999-03-02",
         "jurisdiction": "Oregon", "term": "five (5) years"}
    )  # fmt: skip
    record = extract_document(document(), get_schema("nda"), ScriptedEngine([(invented, "stop")]))
    assert record["data"] == {
        "parties": ["NIKE, Inc."],
        "effective_date": None,
        "jurisdiction": "Oregon",
        "term": None,
    }
    assert set(record["rejected"]) == {"parties.1", "effective_date", "term"}
    assert {f["path"] for f in record["flags"] if f["code"] == "not_found_in_source"} == set(record["rejected"])
    for path, items in record["evidence"].items():
        for item in items:
            assert document().text[item["start"] : item["end"]] == item["text"], path


def test_flag_only_mode_keeps_ungrounded_values_but_flags_them() -> None:
    invented = GOOD.replace("Oregon", "Atlantis")
    options = PipelineOptions(reject_ungrounded=False)
    record = extract_document(document(), get_schema("nda"), ScriptedEngine([(invented, "stop")]), options)
    assert record["data"]["jurisdiction"] == "Atlantis"
    assert {"path": "jurisdiction", "code": "not_found_in_source"}.items() <= record["flags"][0].items()
    assert "jurisdiction" not in record["evidence"]


def test_long_documents_are_chunked_and_merged_with_progress() -> None:
    long_text = " ".join([TEXT] * 40)
    engine = ScriptedEngine([(GOOD, "stop")] * 50, context=1400)
    seen: list[tuple[int, int, int]] = []
    record = extract_document(
        document(long_text, pages=4), get_schema("nda"), engine, PipelineOptions(max_new_tokens=128),
        progress=lambda done, total, generated: seen.append((done, total, generated)),
    )  # fmt: skip
    chunks = record["document"]["chunks"]
    assert chunks > 1 and len(engine.requests) == chunks
    # One call per chunk, in order, each with the tokens generated so far (the engine spends 20 per answer).
    assert seen == [(n, chunks, 20 * n) for n in range(1, chunks + 1)]
    assert record["data"]["parties"] == ["NIKE, Inc.", "Eric Dean Sprunk"]  # de-duplicated across chunks
    # Instructions and the worked example come first and are identical for every chunk (prefix cache).
    prefixes = {tuple(m.content for m in r.messages[:-1]) for r in engine.requests}
    assert len(prefixes) == 1
    assert all(r.messages[-1].role == "user" for r in engine.requests)


def test_a_document_without_text_is_no_text() -> None:
    from workers.documents.errors import DocumentError

    blank = Document("", (Page(1, 0, 0, has_text=False, source="none"),), "application/pdf", "0" * 64, 10)
    with pytest.raises(DocumentError) as info:
        extract_document(blank, get_schema("nda"), ScriptedEngine([]))
    assert info.value.code == "no_text"
    assert info.value.details["pages_without_text"] == [1]
