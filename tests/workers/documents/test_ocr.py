"""OCR fallback without running a model: which pages need it, limits, reading order, offsets, settings."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.support.memory import peak_rss_growth
from tests.workers.documents.data_paths import HOSTILE_DIR
from tests.workers.documents.ocr_builders import image_pdf, oversized_image_pdf, scanned_text_pdf
from tests.workers.documents.pdf_builders import minimal_pdf, text_page
from workers.documents import DOCUMENT_ERROR_CODES, DocumentError, LimitsSpec, Page, read_document
from workers.documents.layout import OcrLine, OcrWord, assemble, page_confidence, reading_order
from workers.documents.model import Document, OcrSpec, boxes_for_span
from workers.documents.ocr import OcrPage, OcrResult, character_error_rate, needs_ocr, with_ocr_pages, word_recall
from workers.documents.text import join_pages
from workers.errors import ConfigError

OCR = LimitsSpec(ocr=OcrSpec())
PARENT_GROWTH_LIMIT_MB = 200  # the parent holds the file and the report, never pixels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        (" \n\t ", True),
        ("\ue000\ue001\ue002 \ue003", True),  # private-use glyphs: a font without a Unicode map
        ("\ufffd\ufffd\ufffdab", True),
        ("Mutual Non-Disclosure Agreement", False),
        ("Agreement \ue000", False),  # one odd glyph in real text is not a scan
    ],
    ids=["empty", "whitespace", "private-use", "replacement", "text", "mostly-text"],
)
def test_needs_ocr(text: str, expected: bool) -> None:
    assert needs_ocr(text) is expected


def test_text_layer_pages_never_start_the_ocr_child() -> None:
    doc = read_document(minimal_pdf([text_page("Hello world")], flate=False), limits=OCR)
    assert doc.pages[0].source == "text_layer"
    assert doc.ocr_pages == ()
    assert doc.ocr_engine is None


def test_oversized_image_page_is_too_large_quickly_with_memory_bounded() -> None:
    bomb = oversized_image_pdf(35_000)
    assert len(bomb) < 16 * 1024, "a tiny file declaring 1.2 gigapixels"
    started = time.monotonic()
    with peak_rss_growth() as parent, pytest.raises(DocumentError) as caught:
        read_document(bomb, limits=OCR)
    elapsed = time.monotonic() - started
    error = caught.value
    assert error.code == "too_large"
    assert error.details["limit"] == "ocr_max_pixels"
    assert error.details["actual"] == 35_000 * 35_000
    assert error.details["page"] == 1
    # Refused from the declared size: the child never decoded anything near 1.2 GB.
    assert error.details["child_peak_rss_mb"] < 400
    assert parent.mb < PARENT_GROWTH_LIMIT_MB
    print(f"oversized image: too_large in {elapsed:.2f} s, child peak {error.details['child_peak_rss_mb']} MB")
    assert elapsed < 15


def test_max_pixels_setting_is_the_limit() -> None:
    pdf = image_pdf(3000, 3000, b"x\x9c\x03\x00\x00\x00\x00\x01")
    with pytest.raises(DocumentError) as caught:
        read_document(pdf, limits=LimitsSpec(ocr=OcrSpec(max_pixels=1_000_000)))
    assert caught.value.code == "too_large"
    assert caught.value.details["max"] == 1_000_000


def test_page_cap_leaves_pages_unread_with_a_warning() -> None:
    doc = read_document(minimal_pdf([b"", b""], flate=False), limits=LimitsSpec(ocr=OcrSpec(max_pages=0)))
    assert doc.pages_without_text == (1, 2)
    assert "pages not OCR'd (max_pages): 2" in doc.warnings


def test_blank_page_is_skipped_without_loading_an_engine() -> None:
    # An engine name that does not exist proves no engine was made: a blank page needs none.
    doc = read_document(minimal_pdf([b""], flate=False), limits=LimitsSpec(ocr=OcrSpec(engine="nonexistent")))
    assert doc.pages[0].source == "none"
    assert "pages not OCR'd (blank): 1" in doc.warnings


def test_unknown_engine_is_a_config_error() -> None:
    pdf = image_pdf(100, 100, b"x\x9c\x03\x00\x00\x00\x00\x01")
    with pytest.raises(ConfigError, match="unknown OCR engine"):
        read_document(pdf, limits=LimitsSpec(ocr=OcrSpec(engine="nonexistent")))


@pytest.mark.skipif(shutil.which("tesseract") is not None, reason="tesseract is installed here")
def test_missing_tesseract_is_a_config_error() -> None:
    pdf = image_pdf(100, 100, b"x\x9c\x03\x00\x00\x00\x00\x01")
    with pytest.raises(ConfigError, match="tesseract"):
        read_document(pdf, limits=LimitsSpec(ocr=OcrSpec(engine="tesseract")))


# --- reading order and offsets (pure Python) --------------------------------------------------


def _line(text: str, x: float, y: float, *, char_w: float = 10, h: float = 20, skew: float = 0.0) -> OcrLine:
    """A line of words at (x, y), each character `char_w` wide, its top edge rising by `skew` per unit."""
    words = []
    cursor = x
    for word in text.split():
        w = len(word) * char_w
        top = y + skew * (cursor - x)
        words.append(OcrWord(word, (cursor, top, cursor + w, top + h), 0.9))
        cursor += w + char_w
    right = cursor - char_w
    dy = skew * (right - x)
    return OcrLine(words=tuple(words), quad=((x, y), (right, y + dy), (right, y + dy + h), (x, y + h)))


def _two_column_page(skew: float = 0.0) -> list[OcrLine]:
    title = _line("A Title Across The Page", 100, 50, skew=skew)
    left = [_line(f"left {i} text here", 100, 100 + 30 * i, skew=skew) for i in range(6)]
    # The right column's baselines sit half a line lower: rows never line up on a real scan.
    right = [_line(f"right {i} text here", 400, 115 + 30 * i, skew=skew) for i in range(6)]
    footer = _line("A Footer Across The Whole Page Width Here", 100, 330, skew=skew)
    # Shuffled: the order must come from geometry, not from the engine.
    return [right[2], footer, left[4], title, right[5], right[0], *left[:4], left[5], right[4], right[1], right[3]]


@pytest.mark.parametrize("skew", [0.0, 0.03], ids=["level", "skewed"])
def test_reading_order_reads_columns_one_after_the_other(skew: float) -> None:
    lines = _two_column_page(skew)
    text = assemble(reading_order(lines)).text
    words = [w for w in text.split() if w.startswith(("left", "right", "Title", "Footer"))]
    expected = ["Title"] + [f"{side}" for side in ["left"] * 6 + ["right"] * 6] + ["Footer"]
    assert words == expected
    numbers = [int(t) for t in text.split() if t.isdigit()]
    assert numbers == list(range(6)) * 2


def test_page_confidence_counts_rejected_lines() -> None:
    good = _line("clearly read words", 0, 0)
    unreadable = OcrLine(
        words=(OcrWord("xqzvkw", (0, 40, 60, 60), 0.2),), quad=((0, 40), (60, 40), (60, 60), (0, 60)), rejected=True
    )
    assert page_confidence([good]) == pytest.approx(0.9)
    # 16 letters at 0.9 and 6 at 0.2: the unreadable line drags the page down although it is not in the text.
    assert page_confidence([good, unreadable]) == pytest.approx((16 * 0.9 + 6 * 0.2) / 22)
    assert page_confidence([]) is None


def test_assemble_records_exact_word_offsets() -> None:
    page = assemble(reading_order([_line("Hello there", 0, 0), _line("second line", 0, 30)]))
    assert page.text == "Hello there\nsecond line"
    assert [page.text[w.start : w.end] for w in page.words] == ["Hello", "there", "second", "line"]
    assert page.confidence == pytest.approx(0.9)


def test_ocr_words_land_at_canonical_offsets_with_boxes() -> None:
    texts = ("Text layer page", "Scanned words here", "")
    ocr_page = OcrPage(
        number=2,
        text=texts[1],
        words=((0, 7, 10, 20, 60, 30, 0.95), (8, 13, 70, 20, 110, 30, 0.5), (14, 18, 120, 20, 150, 30, 0.9)),
        confidence=0.6,
        rotation=90,
        size=(612.0, 792.0),
    )
    result = OcrResult(pages=(ocr_page,), skipped=(), engine="rapidocr", elapsed_s=1.0)
    text, pages = join_pages(texts)
    pages = with_ocr_pages(pages, result, min_confidence=0.8)
    doc = Document(text, pages, "application/pdf", "0" * 64, 1, ocr_engine="rapidocr")
    page: Page = doc.page(2)
    assert page.source == "ocr" and page.low_confidence and page.rotation == 90
    assert doc.low_confidence_pages == (2,)
    assert [text[w.start : w.end] for w in page.words] == ["Scanned", "words", "here"]
    start = text.index("words")
    boxes = boxes_for_span(doc, start, start + len("words here"))
    assert [(b.page, b.x0, b.confidence) for b in boxes] == [(2, 70, 0.5), (2, 120, 0.9)]
    assert boxes_for_span(doc, 0, 4) == ()  # a page without word boxes gives none


def test_quality_measures() -> None:
    assert character_error_rate("The  cat\nsat", "The cat sat") == 0.0
    assert character_error_rate("The bat sat", "The cat sat") == pytest.approx(1 / 11)
    assert word_recall("the cat, sat", "The cat sat on the mat") == pytest.approx(3 / 6)


def test_settings_map_to_the_ocr_spec() -> None:
    from service.config import Settings
    from service.runtime import limits_from

    spec = limits_from(Settings(ocr_engine="tesseract", ocr_max_pages=3, ocr_timeout_s=9, ocr_threads=2)).ocr
    assert spec == OcrSpec(engine="tesseract", max_pages=3, timeout_s=9, threads=2)
    assert limits_from(Settings(ocr_enabled=False)).ocr is None


def _scanned_doc(min_confidence: float) -> Document:
    """A document whose second page was 'OCR'd': words with boxes, confidence 0.6."""
    texts = ("Cover page of the agreement", "Made between Acme Widgets and Globex", "")
    page_text = texts[1]
    words = []
    for n, match in enumerate(re.finditer(r"\S+", page_text)):
        words.append((match.start(), match.end(), 72.0 + 60 * n, 100.0, 72.0 + 60 * n + 50, 112.0, 0.6))
    ocr_page = OcrPage(2, page_text, tuple(words), 0.6, 0, (612.0, 792.0))
    text, pages = join_pages(texts)
    pages = with_ocr_pages(pages, OcrResult((ocr_page,), (), "rapidocr", 1.0), min_confidence)
    return Document(text, pages, "application/pdf", "0" * 64, 1, ocr_engine="rapidocr")


def test_evidence_on_an_ocr_page_carries_word_boxes_and_low_confidence_flags() -> None:
    from workers.pipeline.grounding import LOW_OCR_CONFIDENCE, ground_record, low_confidence_flags

    doc = _scanned_doc(min_confidence=0.8)
    evidence, flags = ground_record({"party": "Acme Widgets", "title": "Cover page"}, doc)
    assert flags == []
    party = evidence["party"][0].to_dict()
    assert party["page"] == 2 and party["text"] == "Acme Widgets"
    assert [(b["x0"], b["y0"], b["x1"], b["y1"]) for b in party["boxes"]] == [
        (192, 100, 242, 112),
        (252, 100, 302, 112),
    ]
    # A page without word boxes (no boxes child ran here): the evidence has no `boxes`.
    assert "boxes" not in evidence["title"][0].to_dict()
    low = low_confidence_flags(evidence, doc)
    assert [(f.path, f.code) for f in low] == [("party", LOW_OCR_CONFIDENCE)]
    assert low_confidence_flags(evidence, _scanned_doc(min_confidence=0.5)) == []


def test_ocr_child_past_its_wall_clock_is_a_timeout() -> None:
    # A full page of text: starting the child and loading the models alone take longer than half a second.
    pdf = scanned_text_pdf([f"Line {n} of a page that takes longer to read than the limit allows." for n in range(30)])
    started = time.monotonic()
    with pytest.raises(DocumentError) as caught:
        read_document(pdf, limits=LimitsSpec(ocr=OcrSpec(timeout_s=0.5)))
    assert caught.value.code == "timeout"
    assert caught.value.details["limit"] == "ocr_timeout_s"
    assert time.monotonic() - started < 10


_SCANS = {"ocrmypdf-linn.pdf", "ocrmypdf-skew.pdf", "ocrmypdf-cardinal.pdf", "ocrmypdf-enormous.pdf"}
HOSTILE_NOT_SCANS = sorted(p for p in HOSTILE_DIR.glob("*.pdf") if p.name not in _SCANS)


@pytest.mark.parametrize("path", HOSTILE_NOT_SCANS, ids=[p.name for p in HOSTILE_NOT_SCANS])
def test_hostile_pdfs_with_ocr_on_end_in_a_document_or_known_error(path: Path) -> None:
    # The scans are read in test_ocr_scans; every other file must stay as quick with OCR turned on.
    started = time.monotonic()
    try:
        doc = read_document(path, limits=OCR)
    except DocumentError as e:
        assert e.code in DOCUMENT_ERROR_CODES
    else:
        assert all(p.source in ("text_layer", "none") for p in doc.pages)
    assert time.monotonic() - started < 15
