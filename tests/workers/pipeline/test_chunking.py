"""Chunking: chunks fit the budget, neighbours overlap, the union covers the text, cuts fall at breaks."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pypdf
import pytest

from workers.documents.model import Document
from workers.documents.text import join_pages
from workers.pipeline.chunking import Chunk, chunk_document


class WordCounter:
    """A stand-in tokenizer: words and punctuation marks are tokens; it counts its own calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        return len(re.findall(r"\w+|[^\w\s]", text))


def make_doc(*pages: str) -> Document:
    text, spans = join_pages(list(pages))
    return Document(text=text, pages=spans, media_type="text/plain", sha256="0" * 64, size_bytes=len(text))


def check_chunks(doc: Document, chunks: list[Chunk], count: WordCounter, max_tokens: int) -> None:
    covered = bytearray(len(doc.text))
    for i, c in enumerate(chunks):
        assert c.index == i
        assert c.text == doc.text[c.start : c.end]
        assert c.text.strip()
        assert count(c.text) <= max_tokens
        touched = tuple(p.number for p in doc.pages if p.start < c.end and c.start < p.end)
        assert c.pages == touched
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    uncovered = [i for i, ch in enumerate(doc.text) if not covered[i] and not ch.isspace()]
    assert uncovered == []
    for a, b in itertools.pairwise(chunks):
        assert a.start < b.start and a.end < b.end


@pytest.fixture(scope="module")
def long_doc(kleister_dir: Path) -> Document:
    reader = pypdf.PdfReader(kleister_dir / "05947711a24a5b7ce401911d31e19c91.pdf")
    pages = [p.extract_text() or "" for p in reader.pages]
    return make_doc(*(pages * 4))


def test_short_document_is_one_chunk() -> None:
    doc = make_doc("  Short note.\nAge 50.  ", "Second page.\n")
    count = WordCounter()
    chunks = chunk_document(doc, count, max_tokens=100, overlap_tokens=10)
    assert len(chunks) == 1
    assert chunks[0].text == "Short note.\nAge 50.  \n\f\nSecond page."
    assert chunks[0].pages == (1, 2)
    assert count.calls == 1


def test_blank_document_has_no_chunks() -> None:
    assert chunk_document(make_doc("  \n", "\t"), WordCounter(), 100, 10) == []


def test_real_pdf_chunks_fit_overlap_and_cover(long_doc: Document) -> None:
    count = WordCounter()
    chunks = chunk_document(long_doc, count, max_tokens=1000, overlap_tokens=100)
    calls = count.calls
    check_chunks(long_doc, chunks, count, 1000)
    assert len(chunks) > 10
    # One sample count, then about one verification per chunk: the tokenizer is called sparingly.
    assert calls <= 1 + len(chunks) * 1.5
    overlaps = [count(long_doc.text[b.start : a.end]) for a, b in itertools.pairwise(chunks)]
    assert all(0 < o <= 250 for o in overlaps), overlaps
    assert sum(overlaps) / len(overlaps) == pytest.approx(100, rel=0.5)


def test_zero_overlap_chunks_do_not_overlap(long_doc: Document) -> None:
    count = WordCounter()
    chunks = chunk_document(long_doc, count, max_tokens=800, overlap_tokens=0)
    check_chunks(long_doc, chunks, count, 800)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))


def test_cuts_prefer_page_boundaries() -> None:
    page = " ".join(f"Sentence number {i} ends here." for i in range(30))  # 180 tokens
    doc = make_doc(*([page] * 6))
    count = WordCounter()
    chunks = chunk_document(doc, count, max_tokens=250, overlap_tokens=0)
    check_chunks(doc, chunks, count, 250)
    page_ends = {p.end for p in doc.pages}
    assert all(c.end in page_ends for c in chunks)


def test_cuts_prefer_blank_lines_then_sentences() -> None:
    para = " ".join(f"Clause {i} binds the parties." for i in range(12))  # 72 tokens
    doc = make_doc("\n\n".join([para] * 10))
    count = WordCounter()
    chunks = chunk_document(doc, count, max_tokens=200, overlap_tokens=0)
    check_chunks(doc, chunks, count, 200)
    assert all(c.end == len(doc.text) or doc.text[c.end : c.end + 2] == "\n\n" for c in chunks)

    one_paragraph = make_doc(" ".join([para] * 10))
    chunks = chunk_document(one_paragraph, count, max_tokens=200, overlap_tokens=0)
    check_chunks(one_paragraph, chunks, count, 200)
    assert all(c.text.endswith(".") for c in chunks)


def test_text_without_breaks_is_cut_hard_but_fits() -> None:
    doc = make_doc("x" * 5000)
    chars = lambda text: len(text)  # noqa: E731 - one token per character
    chunks = chunk_document(doc, chars, max_tokens=700, overlap_tokens=50)
    assert all(len(c.text) <= 700 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == 5000
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))


def test_denser_region_than_estimated_still_fits() -> None:
    # Prose is ~5 chars/token but the digit table counts one token per digit: the estimate overshoots there.
    prose = "The receiving party shall hold the information in confidence. " * 40
    table = " ".join("1234567890" for _ in range(120))
    doc = make_doc(prose, table, prose)

    def dense(text: str) -> int:
        return len(re.findall(r"\d|[A-Za-z]+|[^\w\s]", text))

    chunks = chunk_document(doc, dense, max_tokens=300, overlap_tokens=30)
    assert chunks and all(dense(c.text) <= 300 for c in chunks)
    assert chunks[-1].end == len(doc.text.rstrip())


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (100, 100), (100, -1)], ids=["zero", "overlap-eq", "neg"])
def test_impossible_budgets_are_refused(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(make_doc("text"), WordCounter(), max_tokens, overlap)
