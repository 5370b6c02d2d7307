"""Word boxes for text-layer PDF pages: pdfium's character boxes mapped onto the canonical text.

The canonical text of a text-layer page is pypdf's; pdfium's text page knows where every character
is drawn. The two texts agree on the characters but not always on whitespace, ligatures or order, so
their non-whitespace characters are aligned (Levenshtein, rapidfuzz) and every whitespace-separated
word of the canonical text gets the box of the characters it was aligned to, split where it changes
line. Boxes use the frame of OCR words: points from the top-left corner of the page as displayed.

`text_layer_words` is the parent's half: it runs `locate_words` (the child's half, in
`boxes_child`) in a sandboxed child like every other parser, and gets back at most `max_words` words,
so the child's output is bounded. Boxes are a convenience for reviewers: a child that fails leaves
the pages without boxes and says so in a warning; it never fails the read.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from workers.documents.errors import DocumentError
from workers.documents.model import LimitsSpec, Page, Word
from workers.documents.sandbox import ChildLimits, error_result, run_in_child

CHILD_MODULE: Final = "workers.documents.boxes_child"
# One word in the child's JSON: [start, end, x0, y0, x1, y1] with two decimals, commas and brackets.
_OUTPUT_BYTES_PER_WORD: Final = 64
_OUTPUT_OVERHEAD_BYTES: Final = 1024 * 1024
# The device pdfium maps page space onto has integer pixels: this many per point keeps 1/64 pt.
_DEVICE_SCALE: Final = 64.0

# (start, end, x0, y0, x1, y1): offsets in the page's own text, box in points (top-left origin).
WordTuple = tuple[int, int, float, float, float, float]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageWords:
    """One text-layer page's words with boxes, and its size as displayed, in points."""

    number: int
    words: tuple[WordTuple, ...]
    size: tuple[float, float]


def text_layer_words(
    data: bytes, *, password: str | None, pages: Sequence[tuple[int, str]], limits: LimitsSpec, warnings: list[str]
) -> dict[int, PageWords]:
    """Boxes for the words of `pages` ((1-based number, canonical page text)); {} with a warning on failure."""
    if not pages:
        return {}
    max_words = max(limits.max_chars // 2, 1)
    text_bytes = sum(len(text) for _, text in pages) * 6
    child_limits = ChildLimits(
        timeout_s=limits.timeout_s,
        memory_mb=limits.memory_mb,
        output_bytes=max_words * _OUTPUT_BYTES_PER_WORD + _OUTPUT_OVERHEAD_BYTES + text_bytes,
    )
    with tempfile.TemporaryDirectory(prefix="abstractor-boxes-") as tmp:
        workdir = Path(tmp)
        input_path = workdir / "input.pdf"
        input_path.write_bytes(data)
        payload = {
            "path": str(input_path),
            "password": password,
            "pages": [[number, text] for number, text in pages],
            "max_words": max_words,
        }
        try:
            run = run_in_child(CHILD_MODULE, payload, limits=child_limits, workdir=workdir)
        except DocumentError as e:
            # Codes only: the reader already got the text; boxes are what we lose.
            logger.warning("text boxes failed", extra={"error_code": e.code})
            warnings.append(f"pages without text boxes ({e.code}): {len(pages)}")
            return {}
    out: dict[int, PageWords] = {}
    for item in run.payload["pages"]:
        number, width, height = int(item["number"]), float(item["width"]), float(item["height"])
        words = tuple((int(w[0]), int(w[1]), float(w[2]), float(w[3]), float(w[4]), float(w[5])) for w in item["words"])
        out[number] = PageWords(number, words, (width, height))
    if run.payload.get("truncated"):
        warnings.append(f"pages without text boxes (max_words): {len(pages) - len(out)}")
    return out


def with_text_boxes(pages: tuple[Page, ...], found: dict[int, PageWords]) -> tuple[Page, ...]:
    """The pages with their words (offsets moved into the canonical text) and size where boxes were found."""
    out = []
    for page in pages:
        item = found.get(page.number)
        if item is None or page.source != "text_layer":
            out.append(page)
            continue
        words = tuple(
            Word(page.start + s, page.start + e, x0, y0, x1, y1, 1.0)
            for s, e, x0, y0, x1, y1 in item.words
            if 0 <= s < e <= page.end - page.start
        )
        out.append(replace(page, words=words, size=item.size))
    return tuple(out)


# --- pure alignment (no pdfium): testable on its own ------------------------------------------


def align_words(text: str, chars: Sequence[tuple[str, tuple[float, float, float, float] | None]]) -> list[WordTuple]:
    """Each whitespace-separated word of `text` with the box of the `chars` (character, box) aligned to it.

    Boxes are (x0, y0, x1, y1), y growing downwards; a word whose characters change line gives one
    box per line. Characters with no box (generated by pdfium) or not aligned count for nothing.
    """
    from rapidfuzz.distance import Levenshtein

    ours = [i for i, c in enumerate(text) if not c.isspace()]
    theirs = [i for i, (c, box) in enumerate(chars) if box is not None and not c.isspace()]
    if not ours or not theirs:
        return []
    mapped: dict[int, tuple[float, float, float, float]] = {}
    a = "".join(text[i] for i in ours)
    b = "".join(chars[j][0] for j in theirs)
    for op in Levenshtein.opcodes(a, b):
        tag, a0, a1, b0 = op.tag, op.src_start, op.src_end, op.dest_start
        # "replace" runs of equal length are the same glyphs read differently (quotes, dashes).
        if tag == "equal" or (tag == "replace" and a1 - a0 == op.dest_end - b0):
            for k in range(a1 - a0):
                box = chars[theirs[b0 + k]][1]
                if box is not None:
                    mapped[ours[a0 + k]] = box
    words: list[WordTuple] = []
    start = None
    for i in range(len(text) + 1):
        if i < len(text) and not text[i].isspace():
            if start is None:
                start = i
            continue
        if start is not None:
            words.extend(_word_boxes(start, i, mapped))
            start = None
    return words


def _same_line(last: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> bool:
    """Whether `box` goes on from `last` along a line: across the page, or down it on a turned page."""
    across = last[1] <= (box[1] + box[3]) / 2 <= last[3]
    down = last[0] <= (box[0] + box[2]) / 2 <= last[2]
    return across or down


def _word_boxes(start: int, end: int, mapped: dict[int, tuple[float, float, float, float]]) -> list[WordTuple]:
    """One box per line for the characters of `[start, end)` that were aligned."""
    out: list[WordTuple] = []
    group: list[int] = []

    def close() -> None:
        if group:
            boxes = [mapped[i] for i in group]
            out.append(
                (
                    group[0],
                    group[-1] + 1,
                    round(min(b[0] for b in boxes), 2),
                    round(min(b[1] for b in boxes), 2),
                    round(max(b[2] for b in boxes), 2),
                    round(max(b[3] for b in boxes), 2),
                )
            )
            group.clear()

    for i in range(start, end):
        box = mapped.get(i)
        if box is None:
            continue
        if group and not _same_line(mapped[group[-1]], box):
            close()
        group.append(i)
    close()
    if out:
        # The first and last groups reach the word's edges, so a span always finds the whole word.
        _, first_end, x0, y0, x1, y1 = out[0]
        out[0] = (start, first_end, x0, y0, x1, y1)
        s1, _, x0, y0, x1, y1 = out[-1]
        out[-1] = (s1 if len(out) > 1 else start, end, x0, y0, x1, y1)
    return out


# --- child side ----------------------------------------------------------------------------------


def locate_words(payload: dict[str, Any]) -> dict[str, Any]:
    """Child side: pdfium's character boxes for each page, aligned to that page's canonical text."""
    # Imported here, after the rlimits are set: pdfium never runs unconfined.
    import ctypes

    import pypdfium2
    import pypdfium2.raw as pdfium_c

    max_words: int = payload["max_words"]
    try:
        pdf = pypdfium2.PdfDocument(payload["path"], password=payload["password"])
    except pypdfium2.PdfiumError:
        return error_result("invalid_pdf", exception="PdfiumError")
    pages_out: list[dict[str, Any]] = []
    total = 0
    truncated = False
    for number, text in payload["pages"]:
        if not 1 <= number <= len(pdf):
            continue
        page = pdf[number - 1]
        # pdfium reads a turned page in its turned order, pypdf in the upright one: read it upright
        # (in memory only) so the two orders agree, and turn the boxes ourselves.
        quarter = (page.get_rotation() // 90) % 4
        if quarter:
            page.set_rotation(0)
        width, height = (float(v) for v in page.get_size())
        if quarter % 2:
            width, height = height, width
        textpage = page.get_textpage()
        to_display = _display_transform(page, width, height, quarter, ctypes, pdfium_c)
        chars: list[tuple[str, tuple[float, float, float, float] | None]] = []
        for i in range(textpage.count_chars()):
            code = pdfium_c.FPDFText_GetUnicode(textpage.raw, i)
            char = chr(code) if 0 < code < 0x110000 else " "
            if char.isspace() or pdfium_c.FPDFText_IsGenerated(textpage.raw, i) == 1:
                chars.append((char, None))
                continue
            left, bottom, right, top = textpage.get_charbox(i, loose=True)
            chars.append((char, to_display(left, bottom, right, top)))
        words = align_words(text, chars)
        if total + len(words) > max_words:
            truncated = True
            break
        total += len(words)
        pages_out.append({"number": number, "width": width, "height": height, "words": words})
    return {"ok": {"pages": pages_out, "truncated": truncated}}


def _display_transform(page: Any, width: float, height: float, quarter: int, ctypes: Any, pdfium_c: Any) -> Any:
    """A function from a box in page space to (x0, y0, x1, y1) in points on the page as displayed.

    pdfium's own page-to-device mapping applies the crop box and turns the page by `quarter` turns
    clockwise (its /Rotate); it is affine, so three points fix it. None for a box wholly outside the page.
    """
    size_x, size_y = max(round(width * _DEVICE_SCALE), 1), max(round(height * _DEVICE_SCALE), 1)

    def device(x: float, y: float) -> tuple[float, float]:
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, size_x, size_y, quarter, x, y, ctypes.byref(dx), ctypes.byref(dy))
        return dx.value / _DEVICE_SCALE, dy.value / _DEVICE_SCALE

    ox, oy = device(0.0, 0.0)
    ax, ay = device(1000.0, 0.0)
    bx, by = device(0.0, 1000.0)
    m = ((ax - ox) / 1000.0, (bx - ox) / 1000.0, (ay - oy) / 1000.0, (by - oy) / 1000.0)

    def convert(left: float, bottom: float, right: float, top: float) -> tuple[float, float, float, float] | None:
        xs, ys = [], []
        for x, y in ((left, bottom), (right, top)):
            xs.append(ox + m[0] * x + m[1] * y)
            ys.append(oy + m[2] * x + m[3] * y)
        # Clipped to the page: a glyph drawn outside it is not shown, so there is nothing to highlight.
        x0, y0, x1, y1 = max(min(xs), 0.0), max(min(ys), 0.0), min(max(xs), width), min(max(ys), height)
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

    return convert
