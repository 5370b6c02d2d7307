"""Page-level OCR fallback: which pages need it, running it in its own limited child, and the result.

The text child (pypdf) runs first and stays fast; only if some pages have no usable text does a second
child start, with the OCR limits (`OcrSpec`): it renders those pages with pdfium, reads them with the
chosen engine and returns each page's text with word boxes. Its text replaces the page's text in the
canonical text, so grounding works on scans exactly as on text layers.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from workers.documents.errors import DocumentError
from workers.documents.model import OcrSpec, Page, Word
from workers.documents.sandbox import ChildLimits, error_result, run_in_child

CHILD_MODULE: Final = "workers.documents.ocr_child"
# A page whose text layer is mostly these is unreadable as text: glyphs without a Unicode mapping
# come out of pypdf as replacement characters, private-use code points or control characters.
_UNMAPPED_CATEGORIES: Final = frozenset({"Co", "Cn", "Cs", "Cc"})
_UNMAPPED_SHARE: Final = 0.5
# Room in the child's result for one word: its offsets, box and confidence as JSON.
_OUTPUT_BYTES_PER_WORD: Final = 96
_OUTPUT_BYTES_PER_CHAR: Final = 6
_OUTPUT_OVERHEAD_BYTES: Final = 1024 * 1024
# Stop starting pages this long before the wall-clock limit: the result must still be written.
_BUDGET_MARGIN_S: Final = 2.0
# A page is worth OCR only if it draws an image over this share of its area, or text, or many paths
# (outlined text); a page with a rule and a stamp-sized logo is blank.
_MIN_IMAGE_AREA_SHARE: Final = 0.01
_MIN_PATHS: Final = 50
_THREAD_VARIABLES: Final = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_CONTROL_CHARS: Final = {ord(c): None for c in "\x00\r\f\v"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OcrPage:
    """One OCR'd page: its text, its words as (start, end, x0, y0, x1, y1, confidence) in that text and
    in points, the mean confidence, the rotation the engine applied and the page size in points."""

    number: int
    text: str
    words: tuple[tuple[int, int, float, float, float, float, float], ...]
    confidence: float | None
    rotation: int
    size: tuple[float, float]


@dataclass(frozen=True)
class OcrResult:
    """What the OCR child returned: pages read, pages skipped and why, the engine and its cost."""

    pages: tuple[OcrPage, ...]
    skipped: tuple[tuple[int, str], ...]
    engine: str
    elapsed_s: float


def needs_ocr(text: str) -> bool:
    """True when a page's text layer is empty or mostly glyphs that map to no real character."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return True
    unmapped = sum(1 for c in visible if c == "\ufffd" or unicodedata.category(c) in _UNMAPPED_CATEGORIES)
    return unmapped / len(visible) > _UNMAPPED_SHARE


def character_error_rate(recognised: str, reference: str) -> float:
    """Levenshtein distance between the whitespace-normalised texts over the reference's length.

    How OCR quality is measured in tests and benchmarks; line breaks and runs of spaces do not count.
    """
    from rapidfuzz.distance import Levenshtein

    hyp, ref = " ".join(recognised.split()), " ".join(reference.split())
    return Levenshtein.distance(hyp, ref) / max(len(ref), 1)


def word_recall(recognised: str, reference: str) -> float:
    """The share of the reference's words (case-folded, punctuation stripped) that the OCR text holds."""
    from collections import Counter

    def words(text: str) -> Counter[str]:
        return Counter(w for w in ("".join(c for c in t if c.isalnum()) for t in text.casefold().split()) if w)

    ref = words(reference)
    return sum((words(recognised) & ref).values()) / max(sum(ref.values()), 1)


def run_ocr(data: bytes, *, password: str | None, pages: Sequence[int], spec: OcrSpec) -> OcrResult:
    """OCR `pages` (1-based) of the PDF `data` in a limited child; raises DocumentError or ConfigError."""
    chosen = list(pages[: spec.max_pages])
    skipped = [(n, "max_pages") for n in pages[spec.max_pages :]]
    if not chosen:
        return OcrResult(pages=(), skipped=tuple(skipped), engine=spec.engine, elapsed_s=0.0)
    # Generous room for a dense page: about 4,000 words and 40,000 characters each.
    output_bytes = _OUTPUT_OVERHEAD_BYTES + len(chosen) * (
        4000 * _OUTPUT_BYTES_PER_WORD + 40_000 * _OUTPUT_BYTES_PER_CHAR
    )
    limits = ChildLimits(
        timeout_s=spec.timeout_s, memory_mb=spec.memory_mb, output_bytes=output_bytes, threads=spec.threads
    )
    payload: dict[str, Any] = {
        "password": password,
        "pages": chosen,
        "engine": spec.engine,
        "dpi": spec.dpi,
        "max_pixels": spec.max_pixels,
        "threads": spec.threads,
        "budget_s": max(spec.timeout_s - _BUDGET_MARGIN_S, spec.timeout_s / 2),
    }
    # mkdtemp makes the directory 0700: the document and its text are readable by us alone.
    with tempfile.TemporaryDirectory(prefix="abstractor-ocr-") as tmp:
        workdir = Path(tmp)
        input_path = workdir / "input.pdf"
        input_path.write_bytes(data)
        payload["path"] = str(input_path)
        try:
            run = run_in_child(CHILD_MODULE, payload, limits=limits, workdir=workdir)
        except DocumentError as e:
            if e.code != "timeout":
                raise
            # One page outlasted the whole OCR budget (later pages are skipped before it runs out).
            raise DocumentError(
                "timeout",
                f"OCR of the scanned pages took longer than the limit of {spec.timeout_s:g} s.",
                details={**e.details, "limit": "ocr_timeout_s", "max": spec.timeout_s},
            ) from e
    result = run.payload
    read = tuple(
        OcrPage(
            number=p["number"],
            text=p["text"],
            words=tuple(tuple(w) for w in p["words"]),
            confidence=p["confidence"],
            rotation=p["rotation"],
            size=(p["size"][0], p["size"][1]),
        )
        for p in result["pages"]
    )
    skipped += [(n, reason) for n, reason in result["skipped"]]
    logger.info(
        "ocr done",
        extra={
            "engine": spec.engine,
            "pages_ocr": len(read),
            "pages_skipped": len(skipped),
            "child_peak_rss_mb": round(run.peak_rss_mb, 1),
            "child_cpu_s": run.cpu_s,
            "elapsed_s": round(run.wall_s, 3),
        },
    )
    return OcrResult(pages=read, skipped=tuple(skipped), engine=spec.engine, elapsed_s=run.wall_s)


def with_ocr_pages(pages: Sequence[Page], result: OcrResult, min_confidence: float) -> tuple[Page, ...]:
    """The pages with OCR'd ones marked as such: source "ocr", word boxes at canonical offsets, confidence.

    `pages` come from `join_pages` over texts that already hold the OCR text, which `ocr_pages` cleaned
    of everything `normalise` would change, so each word's page-relative offsets just shift by the
    page's start.
    """
    read = {p.number: p for p in result.pages}
    out = []
    for page in pages:
        ocr = read.get(page.number)
        if ocr is None:
            out.append(page)
            continue
        if page.end - page.start != len(ocr.text):
            raise ValueError(f"page {page.number}: OCR text changed length when normalised")
        words = tuple(
            Word(page.start + start, page.start + end, x0, y0, x1, y1, confidence)
            for start, end, x0, y0, x1, y1, confidence in ocr.words
        )
        out.append(
            replace(
                page,
                source="ocr" if page.has_text else "none",
                words=words,
                ocr_confidence=ocr.confidence,
                low_confidence=ocr.confidence is not None and ocr.confidence < min_confidence,
                size=ocr.size,
                rotation=ocr.rotation,
            )
        )
    return tuple(out)


# --- child side ------------------------------------------------------------------------------


def ocr_pages(payload: dict[str, Any]) -> dict[str, Any]:
    """Child side: render each page with pdfium and read it with the engine, within the time budget."""
    # Before numpy loads: BLAS and OpenMP pools default to one thread per core, each reserving address
    # space the memory limit counts, and CPU time the CPU limit counts.
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = str(max(int(payload["threads"]), 1))
    # Imported here, after the rlimits are set: neither pdfium nor the models load unconfined.
    from workers.documents.layout import assemble, page_confidence, reading_order
    from workers.documents.ocr_engines import EngineFailed, EngineUnavailable, OcrEngine, make_engine
    from workers.documents.raster import ImageTooLarge, open_pdf, render_page

    started = time.monotonic()
    budget_s: float = payload["budget_s"]
    try:
        pdf = open_pdf(payload["path"], payload["password"])
    except Exception as e:  # noqa: BLE001 - pdfium raises one generic error for every unreadable file
        return error_result("invalid_pdf", "The PDF could not be opened for OCR.", exception=type(e).__name__)
    engine: OcrEngine | None = None
    pages: list[dict[str, Any]] = []
    skipped: list[tuple[int, str]] = []
    slowest = 0.0
    for number in payload["pages"]:
        page_started = time.monotonic()
        if page_started - started + slowest > budget_s:
            skipped.append((number, "timeout"))
            continue
        page = pdf[number - 1]
        if not _worth_reading(page):
            skipped.append((number, "blank"))
            continue
        try:
            rendered = render_page(page, dpi=payload["dpi"], max_pixels=payload["max_pixels"])
        except ImageTooLarge as e:
            return error_result(
                "too_large",
                f"Page {number} holds an image of {e.pixels} pixels; the OCR limit is {e.limit}.",
                limit="ocr_max_pixels",
                page=number,
                max=e.limit,
                actual=e.pixels,
            )
        if engine is None:
            try:
                engine = make_engine(payload["engine"], threads=payload["threads"])
            except EngineUnavailable as e:
                return error_result("config_error", str(e))
        remaining = budget_s - (time.monotonic() - started)
        try:
            lines, rotation = engine.read(rendered.image, timeout_s=remaining)
        except EngineFailed as e:
            skipped.append((number, f"engine_failed: {e}"))
            continue
        cleaned = _clean(lines)
        text = assemble(reading_order([line for line in cleaned if not line.rejected]))
        confidence = page_confidence(cleaned)
        scale = rendered.scale
        pages.append(
            {
                "number": number,
                "text": text.text,
                "words": [
                    [
                        w.start,
                        w.end,
                        round(w.box[0] / scale, 2),
                        round(w.box[1] / scale, 2),
                        round(w.box[2] / scale, 2),
                        round(w.box[3] / scale, 2),
                        round(w.confidence, 4),
                    ]
                    for w in text.words
                ],
                "confidence": None if confidence is None else round(confidence, 4),
                "rotation": rotation,
                "size": [rendered.width_pt, rendered.height_pt],
            }
        )
        del rendered
        slowest = max(slowest, time.monotonic() - page_started)
    return {"ok": {"pages": pages, "skipped": skipped}}


def _worth_reading(page: Any) -> bool:
    """Whether the page draws anything OCR could read: a sizeable image, text objects, or many paths."""
    import pypdfium2.raw as pdfium_c

    width, height = (float(v) for v in page.get_size())
    area = max(width * height, 1.0)
    paths = 0
    for obj in page.get_objects(max_depth=8):
        if obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT:
            return True
        if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            left, bottom, right, top = obj.get_bounds()
            if (right - left) * (top - bottom) >= _MIN_IMAGE_AREA_SHARE * area:
                return True
        elif obj.type == pdfium_c.FPDF_PAGEOBJ_PATH:
            paths += 1
            if paths >= _MIN_PATHS:
                return True
    return False


def _clean(lines: list[Any]) -> list[Any]:
    """Drop characters the canonical text never holds (NUL, CR, form feed), so offsets stay exact."""
    out = []
    for line in lines:
        words = tuple(
            replace(w, text=w.text.translate(_CONTROL_CHARS)) for w in line.words if w.text.translate(_CONTROL_CHARS)
        )
        if words:
            out.append(replace(line, words=words))
    return out
