"""OCR of real scans with the default engine (RapidOCR): text quality, rotation, word boxes, confidence.

The scans are OCRmyPDF's test resources (see ../shared/data/README.md): `ocrmypdf-linn.pdf` with its
true text `ocrmypdf-linn.txt`, and the same page skewed (`ocrmypdf-skew.pdf`) and turned to each
cardinal direction (`ocrmypdf-cardinal.pdf`, pages at 0, 90, 180 and 270 degrees), so one reference
serves all three. Each file is OCR'd once per session (about 8 CPU seconds a page here).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.workers.documents.data_paths import HOSTILE_DIR, require
from tests.workers.documents.ocr_builders import PAGE_HEIGHT_PT, PAGE_WIDTH_PT, image_pdf, scanned_text_pdf
from workers.documents import Document, LimitsSpec, read_document
from workers.documents.model import OcrSpec
from workers.documents.ocr import character_error_rate
from workers.documents.text import PAGE_SEPARATOR

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
# One thread: on a shared two-core machine a second one costs more in contention than it gains.
SPEC = OcrSpec()
# Character error rates reached (whitespace-normalised Levenshtein over the reference's length), with a
# little headroom; the target is 5%.
LINN_CER_MAX = 0.025
SKEW_CER_MAX = 0.025
CARDINAL_CER_MAX = 0.025


@functools.cache
def ocr_read(name: str) -> Document:
    """The document read with OCR, once per session (the reader's own tests check it cleans up)."""
    return read_document(require(HOSTILE_DIR / name), limits=LimitsSpec(ocr=SPEC))


@functools.cache
def reference() -> str:
    return require(HOSTILE_DIR / "ocrmypdf-linn.txt").read_text(encoding="utf-8")


def page_text(doc: Document, number: int) -> str:
    page = doc.page(number)
    return doc.text[page.start : page.end]


def test_linn_scan_is_read_within_the_error_rate() -> None:
    doc = ocr_read("ocrmypdf-linn.pdf")
    cer = character_error_rate(doc.text, reference())
    print(f"ocrmypdf-linn.pdf: CER {cer:.4f}, confidence {doc.pages[0].ocr_confidence:.3f}")
    assert cer <= LINN_CER_MAX
    page = doc.pages[0]
    assert page.source == "ocr" and page.has_text
    assert doc.ocr_engine == "rapidocr"
    assert page.ocr_confidence is not None and page.ocr_confidence > SPEC.min_confidence
    assert not page.low_confidence and doc.low_confidence_pages == ()
    assert "pages without text layer: 1" not in doc.warnings


def test_skewed_scan_is_read_within_the_error_rate() -> None:
    doc = ocr_read("ocrmypdf-skew.pdf")
    cer = character_error_rate(doc.text, reference())
    print(f"ocrmypdf-skew.pdf: CER {cer:.4f}")
    assert cer <= SKEW_CER_MAX


def test_pages_turned_to_every_cardinal_direction_are_read_upright() -> None:
    doc = ocr_read("ocrmypdf-cardinal.pdf")
    assert [p.source for p in doc.pages] == ["ocr"] * 4
    rates = [character_error_rate(page_text(doc, n), reference()) for n in range(1, 5)]
    print(f"ocrmypdf-cardinal.pdf: CER per page {[round(r, 4) for r in rates]}")
    assert max(rates) <= CARDINAL_CER_MAX
    # Each page is turned by a different quarter: the engine found all four.
    assert sorted(p.rotation for p in doc.pages) == [0, 90, 180, 270]
    assert doc.text.count(PAGE_SEPARATOR) == 3


@pytest.mark.parametrize("name", ["ocrmypdf-linn.pdf", "ocrmypdf-cardinal.pdf"])
def test_word_boxes_are_on_the_page_at_exact_offsets(name: str) -> None:
    doc = ocr_read(name)
    for page in doc.pages:
        assert page.size is not None
        width, height = page.size
        assert page.words
        previous_end = page.start
        for word in page.words:
            assert page.start <= word.start < word.end <= page.end
            assert word.start >= previous_end, "words are in text order and never overlap"
            previous_end = word.end
            token = doc.text[word.start : word.end]
            assert token and not any(c.isspace() for c in token)
            assert 0 <= word.x0 < word.x1 <= width + 0.01
            assert 0 <= word.y0 < word.y1 <= height + 0.01
            assert 0 <= word.confidence <= 1
        # The title heads the page as printed: on the displayed page that edge is where the turn put it.
        title = next(w for w in page.words if "Linn" in doc.text[w.start : w.end])
        near_top_as_printed = {
            0: title.y1 < height / 4,
            90: title.x1 < width / 4,
            180: title.y0 > height * 3 / 4,
            270: title.x0 > width * 3 / 4,
        }
        assert near_top_as_printed[page.rotation], (page.rotation, title)
        # A word lies along its line: wide when the page reads level, tall when it was turned a quarter.
        wide = title.x1 - title.x0 > title.y1 - title.y0
        assert wide == (page.rotation in (0, 180))


def test_pages_below_the_confidence_threshold_are_flagged() -> None:
    doc = ocr_read("ocrmypdf-linn.pdf")
    confidence = doc.pages[0].ocr_confidence
    assert confidence is not None
    # The same result judged against a threshold above its confidence: rebuilt, not re-read.
    from workers.documents.ocr import OcrPage, OcrResult, with_ocr_pages

    page = doc.pages[0]
    words = tuple((w.start, w.end, w.x0, w.y0, w.x1, w.y1, w.confidence) for w in page.words)
    assert page.size is not None
    result = OcrResult((OcrPage(1, doc.text, words, confidence, 0, page.size),), (), "rapidocr", 0.0)
    strict = with_ocr_pages(doc.pages, result, min_confidence=min(confidence + 0.01, 1.0))
    assert strict[0].low_confidence


@pytest.mark.parametrize(("dpi", "noise"), [(60, 40), (50, 60)], ids=["60dpi-noisy", "50dpi-noisier"])
def test_a_poor_scan_is_flagged_low_confidence(dpi: int, noise: float) -> None:
    # The linn page scanned badly: coarse and noisy. Most lines are unreadable; the page must say so
    # even where the few words it did read came out confidently.
    import numpy as np
    import pypdfium2

    pdf = pypdfium2.PdfDocument(require(HOSTILE_DIR / "ocrmypdf-linn.pdf"))
    try:
        image = pdf[0].render(scale=dpi / 72, grayscale=True).to_numpy()
    finally:
        pdf.close()
    noisy = np.clip(image + np.random.default_rng(0).normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    scan = image_pdf(noisy.shape[1], noisy.shape[0], zlib.compress(noisy.tobytes()))
    doc = read_document(scan, limits=LimitsSpec(ocr=SPEC))
    page = doc.pages[0]
    cer = character_error_rate(doc.text, reference())
    print(f"poor scan at {dpi} dpi, noise {noise}: CER {cer:.3f}, confidence {page.ocr_confidence}")
    assert cer > 0.5, "the scan is meant to be hard to read"
    assert page.low_confidence and doc.low_confidence_pages == (1,)
    assert "pages with low OCR confidence: 1" in doc.warnings


def test_enormous_page_is_read_within_the_render_cap() -> None:
    # A 30-inch page holding a 9000 x 9000 image (81 Mpx, under the image limit): the bitmap is
    # drawn coarser so it stays within the render cap, and the text is still read.
    doc = read_document(require(HOSTILE_DIR / "ocrmypdf-enormous.pdf"), limits=LimitsSpec(ocr=SPEC))
    assert doc.pages[0].source == "ocr"
    assert "81 megapixels" in doc.text


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="optional engine: apt-get install tesseract-ocr")
def test_tesseract_engine_reads_the_linn_scan() -> None:
    doc = read_document(require(HOSTILE_DIR / "ocrmypdf-linn.pdf"), limits=LimitsSpec(ocr=OcrSpec(engine="tesseract")))
    cer = character_error_rate(doc.text, reference())
    print(f"ocrmypdf-linn.pdf with tesseract: CER {cer:.4f}")
    assert cer <= LINN_CER_MAX
    assert doc.ocr_engine == "tesseract"
    page = doc.pages[0]
    assert page.words and page.ocr_confidence is not None
    assert [doc.text[w.start : w.end] for w in page.words[:2]] == ["The", "LinnSequencer"]


@pytest.mark.model
def test_extract_on_a_scanned_pdf_grounds_values_with_word_boxes(tmp_path: Path) -> None:
    lines = [
        "MUTUAL NONDISCLOSURE AGREEMENT",
        "This Agreement is made on March 3, 2021",
        "between Acme Widgets, Inc. and Globex Corporation.",
        "It is governed by the laws of the State of Delaware",
        "and lasts for three (3) years.",
    ]
    pdf = tmp_path / "scanned-nda.pdf"
    pdf.write_bytes(scanned_text_pdf(lines))
    env = {**os.environ, "ABSTRACTOR_DATA_DIR": str(REPO / "var")}
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "extract", str(pdf), "--schema", "nda"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record: dict[str, Any] = json.loads(proc.stdout)
    ocr = record["document"]["ocr"]
    assert ocr["engine"] == "rapidocr"
    assert [p["page"] for p in ocr["pages"]] == [1]
    assert ocr["pages"][0]["confidence"] > 0.8
    assert record["document"]["pages_without_text"] == []
    boxed = [item for items in record["evidence"].values() for item in items if item.get("boxes")]
    assert boxed, f"no evidence with word boxes: {record['evidence']}"
    for item in boxed:
        assert item["page"] == 1
        for box in item["boxes"]:
            assert 0 <= box["x0"] < box["x1"] <= PAGE_WIDTH_PT
            assert 0 <= box["y0"] < box["y1"] <= PAGE_HEIGHT_PT
        # The builder starts text one inch down and steps 64 px (23 pt at 200 dpi) a line.
        line = next(i for i, text in enumerate(lines) if item["text"].split()[0] in text)
        top = 72 + line * 64 * 72 / 200
        assert top - 12 <= item["boxes"][0]["y0"] <= top + 12, item
