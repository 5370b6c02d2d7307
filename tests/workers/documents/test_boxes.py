"""Word boxes on text-layer pages: a span's boxes hold exactly the glyphs of its text, by pdfium's own reading."""

from __future__ import annotations

import ctypes
import random
import re
from pathlib import Path

import pypdf
import pypdfium2
import pypdfium2.raw as pdfium_c
import pytest

from tests.workers.documents.data_paths import KLEISTER_DIR, require
from workers.documents.boxes import align_words
from workers.documents.model import Document, LimitsSpec, boxes_for_span
from workers.documents.reader import read_document
from workers.pipeline.grounding.index import SourceIndex

SPANS_PER_DOCUMENT = 40
_SCALE = 64  # device pixels per point when mapping boxes back into pdfium's page space


def _kleister(n: int) -> list[Path]:
    return sorted(require(KLEISTER_DIR).glob("*.pdf"))[:n]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _text_in_box(
    page: pypdfium2.PdfPage, textpage: pypdfium2.PdfTextPage, box: dict[str, float], *, sideways: bool = False
) -> str:
    """pdfium's own text inside a box given in points on `page` as displayed (top-left origin).

    `textpage` may be the upright original's: turning a page changes how it is shown, not its page space.
    """
    width, height = page.get_size()
    size_x, size_y = round(width * _SCALE), round(height * _SCALE)
    # A fifth off the line's top and bottom (its left and right on a page turned a quarter): loose boxes
    # of neighbouring lines may touch; a comma still counts.
    dx, dy = 0.0, 0.0
    if sideways:
        dx = (box["x1"] - box["x0"]) / 5
    else:
        dy = (box["y1"] - box["y0"]) / 5
    corners = []
    for x, y in ((box["x0"] + dx, box["y0"] + dy), (box["x1"] - dx, box["y1"] - dy)):
        px, py = ctypes.c_double(), ctypes.c_double()
        ok = pdfium_c.FPDF_DeviceToPage(page.raw, 0, 0, size_x, size_y, 0, round(x * _SCALE), round(y * _SCALE), px, py)
        assert ok
        corners.append((px.value, py.value))
    (ax, ay), (bx, by) = corners
    return str(textpage.get_text_bounded(left=min(ax, bx), bottom=min(ay, by), right=max(ax, bx), top=max(ay, by)))


def _spans(doc: Document, rng: random.Random) -> list[tuple[int, int]]:
    """Random runs of one to four words on text-layer pages."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", doc.text)]
    out = []
    while len(out) < SPANS_PER_DOCUMENT and words:
        i = rng.randrange(len(words))
        j = min(i + rng.randrange(4), len(words) - 1)
        start, end = words[i][0], words[j][1]
        page = doc.page(doc.page_at(start))
        if page.source == "text_layer" and end <= page.end and "\f" not in doc.text[start:end]:
            out.append((start, end))
    return out


def _rotated(path: Path, degrees: int, out: Path) -> Path:
    """A copy of the PDF with every page's /Rotate turned by `degrees`."""
    reader = pypdf.PdfReader(path)
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page).rotate(degrees)
    with out.open("wb") as f:
        writer.write(f)
    return out


CASES = [(p, 0) for p in _kleister(6)] + [(p, d) for p, d in zip(_kleister(3), (90, 180, 270), strict=False)]


@pytest.mark.parametrize(("source", "rotation"), CASES, ids=[f"{p.name[:8]}-{d}" for p, d in CASES])
def test_a_spans_boxes_enclose_the_glyphs_of_its_text(source: Path, rotation: int, tmp_path: Path) -> None:
    path = _rotated(source, rotation, tmp_path / "rotated.pdf") if rotation else source
    doc = read_document(path)
    assert all(p.words for p in doc.pages if p.source == "text_layer")
    assert all(p.size is not None and p.size[0] > 0 for p in doc.pages if p.words)
    rng = random.Random(source.name)
    pdf = pypdfium2.PdfDocument(path)
    # pdfium reads a turned page's text in the turned order: ask the upright original what lies where.
    upright = pypdfium2.PdfDocument(source)
    enclosed = 0
    spans = _spans(doc, rng)
    for start, end in spans:
        boxes = boxes_for_span(doc, start, end)
        assert boxes, doc.page_at(start)
        number = boxes[0].page
        assert all(b.page == number for b in boxes)
        page = pdf[number - 1]
        width, height = page.get_size()
        assert all(0 <= b.x0 < b.x1 <= width + 1 and 0 <= b.y0 < b.y1 <= height + 1 for b in boxes)
        textpage = upright[number - 1].get_textpage()
        sideways = rotation in (90, 270)
        inside = "".join(
            _text_in_box(page, textpage, {"x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1}, sideways=sideways)
            for b in boxes
        )
        # The boxes cover whole words: the span's text is inside, and nothing beyond its words is.
        words = _squash(doc.text[boxes[0].start : boxes[-1].end])
        if _squash(doc.text[start:end]) in _squash(inside) and len(_squash(inside)) <= len(words) + 2:
            enclosed += 1
    pdf.close()
    upright.close()
    # pypdf and pdfium read a few glyphs differently (ligatures, symbol fonts): nearly all, not all.
    assert enclosed >= 0.95 * len(spans), (enclosed, len(spans))


def test_evidence_on_a_text_layer_page_carries_its_boxes() -> None:
    doc = read_document(_kleister(1)[0])
    index = SourceIndex(doc)
    word = next(m.group() for m in re.finditer(r"[A-Za-z]{6,}", doc.text))
    found, kind = index.locate(word)
    assert kind == "exact" and found
    shape = found[0].to_dict()
    assert shape["boxes"] and set(shape["boxes"][0]) == {"x0", "y0", "x1", "y1", "confidence"}


def test_boxes_can_be_turned_off() -> None:
    doc = read_document(_kleister(1)[0], limits=LimitsSpec(text_boxes=False))
    assert not any(p.words for p in doc.pages)


def test_alignment_survives_different_whitespace_and_a_changed_glyph() -> None:
    boxes = {i: (float(10 * i), 0.0, float(10 * i + 8), 10.0) for i in range(20)}
    # pdfium's reading: no space between the words, a curly quote where pypdf has a straight one.
    theirs = "Acme’sCorp."
    chars = [(c, boxes[i]) for i, c in enumerate(theirs)]
    words = align_words("Acme's  Corp.", chars)
    assert [(s, e) for s, e, *_ in words] == [(0, 6), (8, 13)]
    assert words[0][2:] == (0.0, 0.0, 58.0, 10.0)
    assert words[1][2:] == (60.0, 0.0, 108.0, 10.0)


def test_a_word_across_two_lines_gets_a_box_per_line() -> None:
    chars = [("a", (0.0, 0.0, 5.0, 10.0)), ("b", (6.0, 0.0, 11.0, 10.0)), ("c", (0.0, 20.0, 5.0, 30.0))]
    words = align_words("abc", chars)
    assert words == [(0, 2, 0.0, 0.0, 11.0, 10.0), (2, 3, 0.0, 20.0, 5.0, 30.0)]
