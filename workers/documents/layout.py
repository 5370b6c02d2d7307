"""Reading order and text assembly for OCR output: pure Python, so it is cheap to test on its own.

An OCR engine finds lines anywhere on the page; grounding needs them in the order a person reads them,
joined into one page text whose every word has known offsets. Columns matter: sorting lines top to
bottom interleaves a two-column page line by line, which garbles every sentence.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

# Lines whose top edge leans this much or less count as "level" when estimating a page's skew.
_MAX_SKEW_RAD: Final = math.radians(20)
# A column gutter must be at least this many line heights wide, so word gaps never split a column.
_GUTTER_LINE_HEIGHTS: Final = 0.5
# A region is read as columns only if it spans this many bands (rows): fewer is a table row or two.
_MIN_COLUMN_BANDS: Final = 3
# A step down of more than this many usual line pitches starts a new paragraph.
_PARAGRAPH_PITCHES: Final = 1.5


@dataclass(frozen=True)
class OcrWord:
    """One recognised word: its text, its box in image pixels (x0, y0, x1, y1) and a 0..1 confidence."""

    text: str
    box: tuple[float, float, float, float]
    confidence: float


@dataclass(frozen=True)
class OcrLine:
    """A recognised line: its words left to right and its corner points (tl, tr, br, bl) in image pixels.

    `block` is set by engines that do their own layout analysis (tesseract): lines then arrive in
    reading order already and a change of block starts a paragraph. `rejected` marks a line the engine
    found but could not read with confidence: it stays out of the text, yet counts (low) in the page's
    confidence, so a page whose lines are mostly unreadable is not judged by the few it did read.
    """

    words: tuple[OcrWord, ...]
    quad: tuple[tuple[float, float], ...]
    block: int | None = None
    rejected: bool = False


@dataclass(frozen=True)
class PlacedWord:
    """A word of the assembled page text: `[start, end)` in that text, with its box and confidence."""

    start: int
    end: int
    box: tuple[float, float, float, float]
    confidence: float


@dataclass(frozen=True)
class PageText:
    """The text of one OCR'd page and where each of its words sits."""

    text: str
    words: tuple[PlacedWord, ...] = field(default_factory=tuple)

    @property
    def confidence(self) -> float | None:
        """Mean word confidence weighted by word length; None when nothing was recognised."""
        total = sum(w.end - w.start for w in self.words)
        if total == 0:
            return None
        return sum(w.confidence * (w.end - w.start) for w in self.words) / total


@dataclass(frozen=True)
class _Item:
    """A line in the deskewed frame used for ordering: a thin horizontal slab through its middle."""

    x0: float
    y0: float
    x1: float
    y1: float
    height: float
    line: OcrLine


def page_confidence(lines: Sequence[OcrLine]) -> float | None:
    """Mean word confidence weighted by word length over every line, rejected ones included."""
    words = [w for line in lines for w in line.words]
    total = sum(len(w.text) for w in words)
    if total == 0:
        return None
    return sum(w.confidence * len(w.text) for w in words) / total


def skew_angle(lines: Sequence[OcrLine]) -> float:
    """The page's skew in radians: the median lean of the top edges of its wide lines (0 if none)."""
    angles = []
    for line in lines:
        (x0, y0), (x1, y1) = line.quad[0], line.quad[1]
        width, height = math.hypot(x1 - x0, y1 - y0), _quad_height(line.quad)
        if width > 3 * height:
            angle = math.atan2(y1 - y0, x1 - x0)
            if abs(angle) <= _MAX_SKEW_RAD:
                angles.append(angle)
    return statistics.median(angles) if angles else 0.0


def reading_order(lines: Sequence[OcrLine]) -> list[list[OcrLine]]:
    """The lines grouped into blocks (paragraphs or columns) in reading order.

    Lines from a layout-aware engine (with `block`) keep their order. Otherwise the page is deskewed and
    cut recursively: into bands of rows, then bands that share a column gutter are read column by column.
    """
    if not lines:
        return []
    if all(line.block is not None for line in lines):
        blocks: list[list[OcrLine]] = []
        for line in lines:
            if blocks and blocks[-1][0].block == line.block:
                blocks[-1].append(line)
            else:
                blocks.append([line])
        return blocks
    items = _deskewed_items(lines)
    line_height = statistics.median(i.height for i in items)
    ordered = _order(items, line_height)
    return _paragraphs(ordered, line_height)


def assemble(blocks: Sequence[Sequence[OcrLine]]) -> PageText:
    """Join words with spaces, lines with newlines and blocks with a blank line; record word offsets."""
    parts: list[str] = []
    words: list[PlacedWord] = []
    offset = 0

    def emit(text: str) -> None:
        nonlocal offset
        parts.append(text)
        offset += len(text)

    for b, block in enumerate(blocks):
        if b:
            emit("\n\n")
        for n, line in enumerate(block):
            if n:
                emit("\n")
            for w, word in enumerate(line.words):
                if w:
                    emit(" ")
                words.append(PlacedWord(offset, offset + len(word.text), word.box, word.confidence))
                emit(word.text)
    return PageText("".join(parts), tuple(words))


def _quad_height(quad: Sequence[tuple[float, float]]) -> float:
    (x0, y0), (x3, y3) = quad[0], quad[3]
    return math.hypot(x3 - x0, y3 - y0)


def _deskewed_items(lines: Sequence[OcrLine]) -> list[_Item]:
    """Each line as a slab in a frame rotated by the page's skew, so rows are level again.

    The slab is the middle half of the line's height: detectors pad their boxes, and padded boxes of
    adjacent lines overlap, which would merge rows.
    """
    angle = skew_angle(lines)
    cos, sin = math.cos(-angle), math.sin(-angle)
    items = []
    for line in lines:
        xs = [x * cos - y * sin for x, y in line.quad]
        ys = [x * sin + y * cos for x, y in line.quad]
        height = max(_quad_height(line.quad), 1.0)
        middle = (min(ys) + max(ys)) / 2
        items.append(_Item(min(xs), middle - height / 4, max(xs), middle + height / 4, height, line))
    return items


def _merged(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _gaps(spans: Sequence[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """The empty stretches of [lo, hi] not covered by any span."""
    out = []
    cursor = lo
    for a, b in _merged(spans):
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if hi > cursor:
        out.append((cursor, hi))
    return out


def _bands(items: Sequence[_Item]) -> list[list[_Item]]:
    """Rows: items whose slabs overlap vertically, top to bottom."""
    rows = _merged([(i.y0, i.y1) for i in items])
    tops = [a for a, _ in rows]
    bands: list[list[_Item]] = [[] for _ in rows]
    for item in items:
        bands[bisect.bisect_right(tops, item.y0) - 1].append(item)
    return bands


def _order(items: list[_Item], line_height: float) -> list[_Item]:
    """Recursive cut: bands of rows; consecutive bands sharing a wide vertical gutter form columns."""
    if len(items) <= 1:
        return list(items)
    left, right = min(i.x0 for i in items), max(i.x1 for i in items)
    min_gutter = _GUTTER_LINE_HEIGHTS * line_height
    groups: list[tuple[tuple[float, float] | None, list[list[_Item]]]] = []
    for band in _bands(items):
        gaps = [g for g in _gaps([(i.x0, i.x1) for i in band], left, right) if g[1] - g[0] >= min_gutter]
        if groups and groups[-1][0] is not None:
            open_gutter = groups[-1][0]
            shared = [(max(open_gutter[0], g[0]), min(open_gutter[1], g[1])) for g in gaps]
            shared = [g for g in shared if g[1] - g[0] >= min_gutter and g[0] > left and g[1] < right]
            if shared:
                groups[-1] = (max(shared, key=lambda g: g[1] - g[0]), [*groups[-1][1], band])
                continue
        inner = [g for g in gaps if g[0] > left and g[1] < right]
        # A band may open a column group with a gap at its side (a short line in one column only).
        candidates = inner if inner and len(band) > 1 else gaps
        groups.append((max(candidates, key=lambda g: g[1] - g[0]) if candidates else None, [band]))
    ordered: list[_Item] = []
    for gutter, bands in groups:
        flat = [i for band in bands for i in band]
        if gutter is not None and len(bands) >= _MIN_COLUMN_BANDS and left < gutter[0] and gutter[1] < right:
            cut = (gutter[0] + gutter[1]) / 2
            first = [i for i in flat if i.x1 <= cut]
            second = [i for i in flat if i.x0 >= cut]
            if first and second and len(first) + len(second) == len(flat):
                ordered += _order(first, line_height) + _order(second, line_height)
                continue
        for band in bands:
            ordered += sorted(band, key=lambda i: i.x0)
    return ordered


def _paragraphs(ordered: Sequence[_Item], line_height: float) -> list[list[OcrLine]]:
    """Split the ordered lines where the text jumps back up (a new column) or leaves a wide gap."""
    middles = [(i.y0 + i.y1) / 2 for i in ordered]
    steps = [b - a for a, b in itertools.pairwise(middles) if b - a > line_height / 2]
    pitch = statistics.median(steps) if steps else line_height
    blocks: list[list[OcrLine]] = []
    for n, item in enumerate(ordered):
        step = middles[n] - middles[n - 1] if n else None
        if step is None or step < -line_height / 2 or step > _PARAGRAPH_PITCHES * pitch:
            blocks.append([item.line])
        else:
            blocks[-1].append(item.line)
    return blocks
