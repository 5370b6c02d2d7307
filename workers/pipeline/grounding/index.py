"""The source index: a document's text prepared for exact, normalised and fuzzy lookups of values.

Every `Evidence` it returns satisfies ``text == doc.text[start:end]`` and lies inside one page, so
offsets can be highlighted as they are.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rapidfuzz import fuzz, process

from workers.documents.model import Document, WordBox, boxes_for_span
from workers.pipeline.grounding.variants import (
    ISO_DATE,
    TOKEN,
    as_text,
    norm_token,
    normalize_text,
    parse_duration,
    variant_tiers,
)

MatchKind = Literal["exact", "normalized", "fuzzy"]
MATCH_RANK: dict[MatchKind, int] = {"exact": 3, "normalized": 2, "fuzzy": 1}
"""Higher is stronger; merging prefers values whose best match ranks higher."""

MAX_EVIDENCE = 3
FUZZY_THRESHOLD = 90.0
_FUZZY_MAX_WINDOW = 16  # longer values get one best alignment instead of sliding windows
_FUZZY_MIN_CHARS = 5  # below this a 90% similarity is an exact match or noise
_SCAN_LIMIT = 400  # occurrences inspected per search: "NIKE" may occur hundreds of times

Span = tuple[int, int]


@dataclass(frozen=True)
class Evidence:
    """Where a value is written: `text == doc.text[start:end]`, inside page `page` (1-based).

    `boxes` holds the words the span covers (recognised by OCR, or placed by pdfium on a text layer),
    so a viewer can highlight the page; it is empty for plain text documents.
    """

    page: int
    start: int
    end: int
    text: str
    match: MatchKind
    boxes: tuple[WordBox, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape stored with a result; `boxes` (points, top-left of the page as displayed) when known."""
        out: dict[str, Any] = {
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "match": self.match,
        }
        if self.boxes:
            out["boxes"] = [
                {"x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1, "confidence": b.confidence} for b in self.boxes
            ]
        return out


class SourceIndex:
    """A document's text prepared for fast lookups; build once per document and reuse for every value.

    The normalised text is the document's word tokens, lower-cased and joined by single spaces, with a
    barrier between pages so that no match straddles a page break. Token offsets map every normalised
    match back to exact offsets in `Document.text`.
    """

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        text = doc.text
        pages = [(p.number, p.start, p.end) for p in doc.pages] or [(1, 0, len(text))]
        self._pages = pages
        self._page_starts = [p[1] for p in pages]
        tok_start: list[int] = []
        tok_end: list[int] = []
        tok_norm: list[str] = []
        tok_page: list[int] = []
        norm_start: list[int] = []
        pieces: list[str] = [" "]
        pos = 1
        page_i = 0
        prev_page = -1
        for m in TOKEN.finditer(text):
            s = m.start()
            while page_i + 1 < len(pages) and s >= pages[page_i + 1][1]:
                page_i += 1
            number, p_start, p_end = pages[page_i]
            if not p_start <= s < p_end:
                continue  # outside every page (separators hold no words, but stay safe)
            if prev_page != -1 and number != prev_page:
                pieces.append("\x00 ")
                pos += 2
            prev_page = number
            norm = norm_token(m.group())
            tok_start.append(s)
            tok_end.append(m.end())
            tok_norm.append(norm)
            tok_page.append(number)
            norm_start.append(pos)
            pieces.append(norm)
            pieces.append(" ")
            pos += len(norm) + 1
        self._tok_start = tok_start
        self._tok_end = tok_end
        self._tok_norm = tok_norm
        self._tok_page = tok_page
        self._norm_start = norm_start
        self.norm = "".join(pieces)
        self._windows: dict[int, list[str]] = {}
        self._cache: dict[tuple[str, str, tuple[Span, ...]], tuple[list[Evidence], MatchKind | None]] = {}

    # -- helpers

    def _page_of(self, start: int, end: int) -> int | None:
        """The page holding [start, end), or None when the range crosses a page edge."""
        i = max(bisect.bisect_right(self._page_starts, start) - 1, 0)
        number, p_start, p_end = self._pages[i]
        return number if p_start <= start and end <= p_end else None

    def _evidence(self, start: int, end: int, kind: MatchKind) -> Evidence | None:
        page = self._page_of(start, end)
        if page is None or end <= start:
            return None
        boxes = boxes_for_span(self.doc, start, end)
        return Evidence(page=page, start=start, end=end, text=self.doc.text[start:end], match=kind, boxes=boxes)

    def _widen(self, start: int, end: int, needle: str) -> Span:
        """Take in the value's own edge punctuation where the source has it too ("Inc." rather than "Inc")."""
        text = self.doc.text
        for c in needle[len(needle.rstrip(".,;:)]}'\"”’")) :]:
            if end < len(text) and text[end] == c:
                end += 1
            else:
                break
        for c in reversed(needle[: len(needle) - len(needle.lstrip("([{'\"“‘"))]):
            if start > 0 and text[start - 1] == c:
                start -= 1
            else:
                break
        return start, end

    def _norm_bounds(self, span: Span) -> Span:
        """The normalised-text range covering the tokens that lie wholly inside an original span."""
        i = bisect.bisect_left(self._tok_start, span[0])
        j = bisect.bisect_right(self._tok_end, span[1])
        if i >= j:
            return (0, 0)
        return (self._norm_start[i] - 1, self._norm_start[j - 1] + len(self._tok_norm[j - 1]) + 1)

    def _find_exact(self, needle: str, span: Span | None) -> list[Span]:
        text = self.doc.text
        lo, hi = span if span else (0, len(text))
        first_alnum, last_alnum = needle[0].isalnum(), needle[-1].isalnum()
        out: list[Span] = []
        i = text.find(needle, lo, hi)
        seen = 0
        while i != -1 and seen < _SCAN_LIMIT:
            seen += 1
            j = i + len(needle)
            left_ok = not (first_alnum and i > 0 and text[i - 1].isalnum())
            right_ok = not (last_alnum and j < len(text) and text[j].isalnum())
            if left_ok and right_ok:
                out.append((i, j))
            i = text.find(needle, i + 1, hi)
        return out

    def _find_norm(self, query: str, span: Span | None) -> list[Span]:
        """Whole-token occurrences of a normalised query, as original offsets."""
        if not query:
            return []
        pattern = f" {query} "
        lo, hi = self._norm_bounds(span) if span else (0, len(self.norm))
        n_tokens = query.count(" ") + 1
        out: list[Span] = []
        k = self.norm.find(pattern, lo, hi)
        seen = 0
        while k != -1 and seen < _SCAN_LIMIT:
            seen += 1
            t = bisect.bisect_left(self._norm_start, k + 1)
            last = t + n_tokens - 1
            if t < len(self._norm_start) and self._norm_start[t] == k + 1 and last < len(self._tok_end):
                out.append((self._tok_start[t], self._tok_end[last]))
            k = self.norm.find(pattern, k + 1, hi)
        return out

    def _window_texts(self, width: int) -> list[str]:
        cached = self._windows.get(width)
        if cached is not None:
            return cached
        toks = self._tok_norm
        windows = [" ".join(toks[i : i + width]) for i in range(max(len(toks) - width + 1, 0))]
        if width <= 8:  # short names are the common case; longer windows are large: do not keep them
            self._windows[width] = windows
        return windows

    def _find_fuzzy(self, query: str, span: Span | None) -> list[Span]:
        """Token windows at least `FUZZY_THRESHOLD` similar to the query, best first, not overlapping."""
        if len(query) < _FUZZY_MIN_CHARS or not self._tok_norm:
            return []
        lo, hi = self._norm_bounds(span) if span else (0, len(self.norm))
        region = self.norm[lo:hi]
        # Cheap gate: a window this similar implies a near-equal substring somewhere in the region.
        if fuzz.partial_ratio(query, region) < FUZZY_THRESHOLD - 10:
            return []
        t_lo = bisect.bisect_left(self._tok_start, span[0]) if span else 0
        t_hi = bisect.bisect_right(self._tok_end, span[1]) if span else len(self._tok_norm)
        n = query.count(" ") + 1
        if n > _FUZZY_MAX_WINDOW:
            return self._find_fuzzy_long(query, region, lo, t_lo, t_hi)
        scored: list[tuple[float, int, int]] = []  # (score, first token, last token)
        for width in sorted({max(n - 1, 1), n, n + 1}):
            windows = self._window_texts(width)
            hits = process.extract(query, windows, scorer=fuzz.ratio, score_cutoff=FUZZY_THRESHOLD, limit=None)
            for _, score, i in hits:
                last = i + width - 1
                if t_lo <= i and last < t_hi and self._tok_page[i] == self._tok_page[last]:
                    scored.append((score, i, last))
        scored.sort(key=lambda h: (-h[0], h[1]))
        taken: list[tuple[int, int]] = []
        for _, i, last in scored:
            if all(last < a or i > b for a, b in taken):
                taken.append((i, last))
            if len(taken) >= MAX_EVIDENCE:
                break
        return [(self._tok_start[i], self._tok_end[last]) for i, last in taken]

    def _find_fuzzy_long(self, query: str, region: str, lo: int, t_lo: int, t_hi: int) -> list[Span]:
        """The best alignment only, snapped to whole tokens: a long clause is too costly to slide."""
        found = fuzz.partial_ratio_alignment(query, region, score_cutoff=FUZZY_THRESHOLD)
        if found is None:
            return []
        first = bisect.bisect_right(self._norm_start, lo + found.dest_start) - 1
        if first < 0 or lo + found.dest_start >= self._norm_start[first] + len(self._tok_norm[first]):
            first += 1
        last = bisect.bisect_right(self._norm_start, lo + found.dest_end - 1) - 1
        best: tuple[float, int, int] | None = None
        # The alignment is as long as the query; the source may hold a few more or fewer words.
        for i in range(first - 3, first + 4):
            for j in range(last - 3, last + 4):
                if t_lo <= i <= j < t_hi and self._tok_page[i] == self._tok_page[j]:
                    score = fuzz.ratio(query, " ".join(self._tok_norm[i : j + 1]))
                    if score >= FUZZY_THRESHOLD and (best is None or score > best[0]):
                        best = (score, i, j)
        return [(self._tok_start[best[1]], self._tok_end[best[2]])] if best else []

    def _search(self, finders: Sequence[tuple[str, str]], spans: Sequence[Span] | None) -> list[Span]:
        """Run (kind, needle) finders inside the spans first, then over the whole document."""
        scopes: list[Sequence[Span | None]] = [list(spans)] if spans else []
        scopes.append([None])
        for scope in scopes:
            found: set[Span] = set()
            for kind, needle in finders:
                for span in scope:
                    if kind == "exact":
                        found.update(self._find_exact(needle, span))
                    elif kind == "normalized":
                        found.update(self._find_norm(needle, span))
                    else:
                        found.update(self._find_fuzzy(needle, span))
            if found:
                return _non_overlapping(sorted(found))
        return []

    # -- public

    def contains(self, value: Any) -> bool:
        """Whether a scalar is written in the document exactly or up to case, spacing and punctuation.

        A cheap yes/no (no variants, no fuzzy search): enough to tell a value copied from elsewhere,
        found nowhere, from one read off the document.
        """
        needle = as_text(value)
        if needle is None:
            return False
        return bool(self._search([("exact", needle), ("normalized", normalize_text(needle))], None))

    def locate(
        self, value: Any, spans: Sequence[Span] | None = None, cap: int = MAX_EVIDENCE
    ) -> tuple[list[Evidence], MatchKind | None]:
        """Up to `cap` occurrences of a scalar, first by position, and the kind of match that found them.

        Occurrences inside `spans` (the chunks the value came from) are preferred; the whole document
        is the fallback. Booleans and empty values are not searched.
        """
        needle = as_text(value)
        if needle is None:
            return [], None
        key = (type(value).__name__, needle, tuple(spans or ()))
        cached = self._cache.get(key)
        if cached is None:
            cached = self._locate(value, needle, spans)
            self._cache[key] = cached
        evidence, kind = cached
        return evidence[:cap], kind

    def _locate(self, value: Any, needle: str, spans: Sequence[Span] | None) -> tuple[list[Evidence], MatchKind | None]:
        query = normalize_text(needle)
        plans: list[tuple[MatchKind, list[tuple[str, str]]]] = [
            ("exact", [("exact", needle)]),
            ("normalized", [("normalized", query)]),
        ]
        tiers = variant_tiers(value)
        if tiers and isinstance(value, str) and parse_duration(value) is not None:
            # "3 years" also matches inside "three (3) years": search both together so the longer wins.
            plans[1][1].extend(("normalized", normalize_text(form)) for form in tiers.pop(0))
        for tier in tiers:
            plans.append(("normalized", [("normalized", normalize_text(form)) for form in tier]))
        if _fuzzy_allowed(value, query):
            plans.append(("fuzzy", [("fuzzy", query)]))
        for kind, finders in plans:
            hits = self._search(finders, spans)
            if kind != "exact":
                hits = [self._widen(s, t, needle) for s, t in hits]
            evidence = [e for e in (self._evidence(s, t, kind) for s, t in hits) if e is not None]
            if evidence:
                return evidence[:MAX_EVIDENCE], kind
        return [], None


def _fuzzy_allowed(value: Any, query: str) -> bool:
    """Fuzzy matching is for names and phrases: a date or number one digit off is a different value."""
    if not isinstance(value, str) or ISO_DATE.match(value.strip()):
        return False
    alnum = query.replace(" ", "")
    return sum(c.isdigit() for c in alnum) <= 0.3 * len(alnum)


def _non_overlapping(spans: list[Span]) -> list[Span]:
    """Sorted spans with any span that overlaps an earlier kept one dropped (the longer start wins)."""
    out: list[Span] = []
    for s, e in spans:
        if out and s < out[-1][1]:
            if s == out[-1][0] and e > out[-1][1]:
                out[-1] = (s, e)
            continue
        out.append((s, e))
    return out


@functools.lru_cache(maxsize=2)
def source_index(doc: Document) -> SourceIndex:
    """The `SourceIndex` of a document, kept for the last two documents (merge, then ground)."""
    return SourceIndex(doc)
