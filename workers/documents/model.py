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


@dataclass(frozen=True)
class LimitsSpec:
    """Resource limits for reading one document (built from Settings by the caller)."""

    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 500
    max_chars: int = 2_000_000
    timeout_s: float = 15.0
    memory_mb: int = 1024


@dataclass(frozen=True)
class Document:
    """Canonical text of a document; every evidence offset in a record points into `text`."""

    text: str
    pages: tuple[Page, ...]
    media_type: str
    sha256: str
    size_bytes: int
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pages_without_text(self) -> tuple[int, ...]:
        """1-based numbers of pages that had no usable text (candidates for OCR)."""
        return tuple(p.number for p in self.pages if not p.has_text)

    def page_at(self, offset: int) -> int:
        """The 1-based page holding character `offset` of the canonical text."""
        starts = [p.start for p in self.pages]
        i = bisect.bisect_right(starts, offset) - 1
        return self.pages[max(i, 0)].number

    def page(self, number: int) -> Page:
        """The page with this 1-based number."""
        return self.pages[number - 1]
