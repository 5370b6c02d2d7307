"""Every hostile PDF we have must end quickly in a Document or a known DocumentError, never a crash."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.workers.documents.data_paths import HOSTILE_DIR, require
from workers.documents import DOCUMENT_ERROR_CODES, Document, DocumentError, read_document

HOSTILE_PDFS = sorted(HOSTILE_DIR.glob("*.pdf"))
TIME_LIMIT_S = 15.0


@pytest.mark.parametrize("path", HOSTILE_PDFS, ids=[p.name for p in HOSTILE_PDFS])
def test_hostile_pdf_ends_in_document_or_known_error(
    path: Path, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    try:
        outcome: Document | DocumentError = read_document(path)
    except DocumentError as e:
        outcome = e
    elapsed = time.monotonic() - started

    if isinstance(outcome, DocumentError):
        assert outcome.code in DOCUMENT_ERROR_CODES
        label = outcome.code
    else:
        assert [p.number for p in outcome.pages] == list(range(1, len(outcome.pages) + 1))
        label = f"document ({len(outcome.pages)} pages, {len(outcome.text)} chars)"
    record_property("outcome", label)
    record_property("elapsed_s", round(elapsed, 2))
    print(f"{path.name}: {label} in {elapsed:.2f} s")
    assert elapsed < TIME_LIMIT_S


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ocrmypdf-invalid.pdf", "invalid_pdf"),
        ("qpdf-pages-loop.pdf", "invalid_pdf"),
        ("qpdf-deep-pages.pdf", "too_large"),
    ],
)
def test_known_hostile_outcomes(name: str, code: str) -> None:
    with pytest.raises(DocumentError) as caught:
        read_document(require(HOSTILE_DIR / name))
    assert caught.value.code == code


def test_scanned_pdf_pages_are_flagged_for_ocr() -> None:
    doc = read_document(require(HOSTILE_DIR / "ocrmypdf-skew.pdf"))
    assert doc.pages_without_text == (1,)
    assert doc.pages[0].source == "none"
    assert "pages without text layer: 1" in doc.warnings


def test_a_pdf_named_file_holding_text_is_read_as_text() -> None:
    # Content decides the type, not the name: qpdf's "bad1" is five bytes of ASCII.
    doc = read_document(require(HOSTILE_DIR / "qpdf-bad1.pdf"))
    assert doc.media_type == "text/plain"
