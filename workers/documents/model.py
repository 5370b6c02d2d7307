"""The typed result of reading a document: one canonical text plus the pages' spans inside it."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Page:
    """A page's slice `[start, end)` of the canonical text; `number` is 1-based."""

    number: int
    start: int
    end: int
    has_text: bool = True
    source: str = "text_layer"  # "text_layer" | "ocr" | "none"
    # Every word with its box: recognised by OCR, or placed by pdfium on text-layer pages (`boxes`).
    words: tuple[Word, ...] = ()
    # OCR pages only: the page's mean word confidence (0..1).
    ocr_confidence: float | None = None
    # True when ocr_confidence fell below OcrSpec.min_confidence: the text may be wrong, flag what cites it.
    low_confidence: bool = False
    # The page as displayed (rotation applied), in points: the frame of the word boxes (set when there are any).
    size: tuple[float, float] | None = None
    # OCR pages only: clockwise degrees the engine turned the page to read it upright (0, 90, 180, 270).
    rotation: int = 0


@dataclass(frozen=True)
class Word:
    """A word: `[start, end)` in the canonical text and its box on the page (confidence 1.0 on text layers).

    The box is in points (1/72 inch) from the top-left corner of the page as displayed (its /Rotate
    applied), y growing downwards: the frame a viewer draws highlights in.
    """

    start: int
    end: int
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float


@dataclass(frozen=True)
class WordBox:
    """A box that covers part of a span of the canonical text: its page (1-based) and its word's box."""

    page: int
    start: int
    end: int
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float


@dataclass(frozen=True)
class OcrSpec:
    """How pages without a usable text layer are OCR'd (built from Settings by the caller).

    `max_pages` caps how many pages of one document are OCR'd (the rest keep no text, with a warning);
    `timeout_s` and `memory_mb` bound the OCR child as a whole; `max_pixels` refuses any page image
    declared larger (too_large) and caps the rendered bitmap; `min_confidence` flags pages below it;
    `threads` is how many cores the engine may keep busy.
    """

    engine: str = "rapidocr"  # "rapidocr" | "tesseract"
    max_pages: int = 50
    timeout_s: float = 300.0
    max_pixels: int = 100_000_000
    min_confidence: float = 0.8
    dpi: int = 300
    memory_mb: int = 2048
    threads: int = 1


@dataclass(frozen=True)
class LimitsSpec:
    """Resource limits for reading one document (built from Settings by the caller)."""

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 500
    max_chars: int = 2_000_000
    timeout_s: float = 15.0
    memory_mb: int = 1024
    # Word boxes for text-layer PDF pages (pdfium, in a child of its own), so evidence can be highlighted.
    text_boxes: bool = True
    # None: pages without a text layer stay empty (flagged); the service turns OCR on from its Settings.
    ocr: OcrSpec | None = None


@dataclass(frozen=True)
class Document:
    """Canonical text of a document; every evidence offset in a record points into `text`."""

    text: str
    pages: tuple[Page, ...]
    media_type: str
    sha256: str
    size_bytes: int
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # The OCR engine that read the pages whose `source` is "ocr"; None when no page was OCR'd.
    ocr_engine: str | None = None

    @property
    def ocr_pages(self) -> tuple[Page, ...]:
        """The pages whose text came from OCR."""
        return tuple(p for p in self.pages if p.source == "ocr")

    @property
    def pages_without_text(self) -> tuple[int, ...]:
        """1-based numbers of pages that had no usable text (candidates for OCR)."""
        return tuple(p.number for p in self.pages if not p.has_text)

    @property
    def low_confidence_pages(self) -> tuple[int, ...]:
        """1-based numbers of OCR pages whose confidence fell below the threshold they were read with."""
        return tuple(p.number for p in self.pages if p.low_confidence)

    def page_at(self, offset: int) -> int:
        """The 1-based page holding character `offset` of the canonical text."""
        starts = [p.start for p in self.pages]
        i = bisect.bisect_right(starts, offset) - 1
        return self.pages[max(i, 0)].number

    def page(self, number: int) -> Page:
        """The page with this 1-based number."""
        return self.pages[number - 1]


def boxes_for_span(doc: Document, start: int, end: int) -> tuple[WordBox, ...]:
    """The boxes of the words that overlap `[start, end)` of `doc.text`, in text order.

    Empty for spans on pages without word boxes (plain text, a failed boxes child) and for empty spans.
    """
    if end <= start:
        return ()
    out: list[WordBox] = []
    first = doc.page_at(start)
    for page in doc.pages[first - 1 :]:
        if page.start >= end:
            break
        if not page.words or page.end <= start:
            continue
        # Words are in text order: bisect to the first word that ends after `start`.
        i = bisect.bisect_right([w.end for w in page.words], start)
        for word in page.words[i:]:
            if word.start >= end:
                break
            out.append(WordBox(page.number, word.start, word.end, word.x0, word.y0, word.x1, word.y1, word.confidence))
    return tuple(out)
