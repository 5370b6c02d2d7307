"""Real PDFs (Kleister NDA): the canonical text, page spans, separators and limits."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.workers.documents.data_paths import KLEISTER_DIR, require
from workers.documents import PAGE_SEPARATOR, DocumentError, LimitsSpec, read_document
from workers.documents.text import normalise

# A ten-page NDA with two blank pages, and a short two-page one.
KLEISTER = ["116d39507d6bb61c0dec66872bd13e1c.pdf", "1ebe90010883632839adf34be282271b.pdf"]


@pytest.fixture(params=KLEISTER, ids=KLEISTER)
def kleister_pdf(request: pytest.FixtureRequest) -> Path:
    return require(KLEISTER_DIR / request.param)


def test_pages_round_trip_against_pypdf(kleister_pdf: Path) -> None:
    doc = read_document(kleister_pdf)
    expected = [normalise(page.extract_text()) for page in PdfReader(kleister_pdf).pages]

    assert doc.media_type == "application/pdf"
    assert [p.number for p in doc.pages] == list(range(1, len(expected) + 1))
    assert [doc.text[p.start : p.end] for p in doc.pages] == expected
    assert doc.text == PAGE_SEPARATOR.join(expected)
    assert doc.pages_without_text == tuple(i for i, t in enumerate(expected, start=1) if not t.strip())


def test_separators_sit_between_pages(kleister_pdf: Path) -> None:
    doc = read_document(kleister_pdf)
    assert doc.pages[0].start == 0
    assert doc.pages[-1].end == len(doc.text)
    for before, after in zip(doc.pages, doc.pages[1:], strict=False):
        assert doc.text[before.end : after.start] == PAGE_SEPARATOR
    assert doc.text.count("\f") == len(doc.pages) - 1


def test_page_at_maps_offsets_to_pages(kleister_pdf: Path) -> None:
    doc = read_document(kleister_pdf)
    for page in doc.pages:
        assert doc.page_at(page.start) == page.number
        if page.end > page.start:
            assert doc.page_at(page.end - 1) == page.number
        assert doc.page(page.number) == page


def test_hash_size_and_clean_text(kleister_pdf: Path) -> None:
    data = kleister_pdf.read_bytes()
    doc = read_document(data)
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert doc.size_bytes == len(data)
    assert "\r" not in doc.text
    assert "\x00" not in doc.text
    assert doc == read_document(kleister_pdf)


def test_blank_pages_are_reported() -> None:
    doc = read_document(require(KLEISTER_DIR / KLEISTER[0]))
    assert len(doc.pages_without_text) == 2
    assert all(doc.page(n).source == "none" for n in doc.pages_without_text)
    assert "pages without text layer: 2" in doc.warnings


def test_too_many_pages() -> None:
    with pytest.raises(DocumentError) as caught:
        read_document(require(KLEISTER_DIR / KLEISTER[0]), limits=LimitsSpec(max_pages=3))
    assert caught.value.code == "too_large"
    assert caught.value.details["limit"] == "max_pages"
    assert caught.value.details["actual"] == 10


def test_too_many_characters_never_echoes_the_text(caplog: pytest.LogCaptureFixture) -> None:
    path = require(KLEISTER_DIR / KLEISTER[1])
    words = {w for w in read_document(path).text.split() if len(w) > 6}
    with caplog.at_level(logging.DEBUG), pytest.raises(DocumentError) as caught:
        read_document(path, limits=LimitsSpec(max_chars=100))
    assert caught.value.code == "too_large"
    assert caught.value.details["limit"] == "max_chars"
    reported = str(caught.value.to_dict()) + caplog.text
    assert not [w for w in words if w in reported]


def test_tiny_timeout_kills_the_child() -> None:
    with pytest.raises(DocumentError) as caught:
        read_document(require(KLEISTER_DIR / KLEISTER[0]), limits=LimitsSpec(timeout_s=0.05))
    assert caught.value.code == "timeout"
    assert caught.value.details["limit"] == "timeout_s"


def test_generated_pdf_normalises_line_ends() -> None:
    from tests.workers.documents.pdf_builders import minimal_pdf, text_page

    doc = read_document(minimal_pdf([text_page("first page"), text_page("second page")], flate=False))
    assert [doc.text[p.start : p.end].strip() for p in doc.pages] == ["first page", "second page"]
