"""`read_document`: bytes or a file in, one canonical `Document` out, every limit enforced on the way."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from workers.documents.boxes import text_layer_words, with_text_boxes
from workers.documents.errors import DocumentError
from workers.documents.model import Document, LimitsSpec, OcrSpec
from workers.documents.ocr import OcrResult, needs_ocr, run_ocr, with_ocr_pages
from workers.documents.pdf import read_pdf
from workers.documents.sniff import MARKDOWN, PDF, SNIFF_BYTES, SUPPORTED_MEDIA_TYPES, TEXT, sniff_media_type
from workers.documents.text import decode_text, join_pages

logger = logging.getLogger(__name__)


def read_document(
    source: Path | bytes,
    *,
    media_type: str | None = None,
    password: str | None = None,
    limits: LimitsSpec = LimitsSpec(),  # noqa: B008 - frozen dataclass, safe as a default
) -> Document:
    """Read a PDF, text or Markdown document into its canonical text and page spans.

    The type is decided by content; a declared `media_type` only chooses between plain text and
    Markdown. PDFs are parsed in a sandboxed child process. Raises DocumentError for any unreadable input
    (see `DOCUMENT_ERROR_CODES`); a missing file raises OSError as usual.
    """
    started = time.monotonic()
    data = _load(source, limits.max_bytes)
    if not data:
        raise DocumentError("empty_document")
    filename = None if isinstance(source, bytes | bytearray | memoryview) else Path(source).name
    kind, warnings = _decide_media_type(data, filename, media_type)
    ocr: OcrResult | None = None
    if kind == PDF:
        pdf = read_pdf(data, password=password, limits=limits)
        page_texts = pdf.pages
        warnings.extend(pdf.warnings)
        if not page_texts:
            raise DocumentError("empty_document", "The PDF has no pages.")
        if limits.ocr is not None:
            page_texts, ocr = _ocr_pages(data, password, page_texts, limits.ocr, warnings)
    else:
        page_texts = (decode_text(data),)
    text, pages = join_pages(page_texts)
    if ocr is not None and limits.ocr is not None:
        pages = with_ocr_pages(pages, ocr, limits.ocr.min_confidence)
    if kind == PDF and limits.text_boxes:
        wanted = [(p.number, text[p.start : p.end]) for p in pages if p.source == "text_layer"]
        found = text_layer_words(data, password=password, pages=wanted, limits=limits, warnings=warnings)
        pages = with_text_boxes(pages, found)
    if len(text) > limits.max_chars:
        raise DocumentError(
            "too_large",
            f"The document holds more than the limit of {limits.max_chars} characters of text.",
            details={"limit": "max_chars", "max": limits.max_chars},
        )
    if kind != PDF and not text.strip():
        raise DocumentError("empty_document", "The document holds only whitespace.")
    without_text = [p.number for p in pages if not p.has_text]
    if without_text:
        warnings.append(f"pages without text layer: {len(without_text)}")
    document = Document(
        text=text,
        pages=pages,
        media_type=kind,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        warnings=tuple(warnings),
        ocr_engine=ocr.engine if ocr is not None and ocr.pages else None,
    )
    # Shape and cost only: document content never goes to a log.
    logger.info(
        "document read",
        extra={
            "media_type": kind,
            "size_bytes": document.size_bytes,
            "pages": len(pages),
            "pages_without_text": len(without_text),
            "pages_ocr": len(document.ocr_pages),
            "chars": len(text),
            "elapsed_s": round(time.monotonic() - started, 3),
        },
    )
    return document


def _ocr_pages(
    data: bytes, password: str | None, page_texts: tuple[str, ...], spec: OcrSpec, warnings: list[str]
) -> tuple[tuple[str, ...], OcrResult | None]:
    """The page texts with OCR text in place of every page that lacks a usable text layer.

    A page OCR could not read (skipped for the page cap, the time budget or an engine failure) keeps
    whatever its text layer held; the reason is counted in `warnings`.
    """
    wanted = [n for n, t in enumerate(page_texts, start=1) if needs_ocr(t)]
    if not wanted:
        return page_texts, None
    result = run_ocr(data, password=password, pages=wanted, spec=spec)
    texts = list(page_texts)
    for page in result.pages:
        texts[page.number - 1] = page.text
    reasons: dict[str, int] = {}
    for _, reason in result.skipped:
        # Engine failures carry a detail after the colon; count them under one reason.
        key = reason.split(":", 1)[0]
        reasons[key] = reasons.get(key, 0) + 1
    for reason, count in sorted(reasons.items()):
        warnings.append(f"pages not OCR'd ({reason}): {count}")
    low = [p.number for p in result.pages if p.confidence is not None and p.confidence < spec.min_confidence]
    if low:
        warnings.append(f"pages with low OCR confidence: {len(low)}")
    return tuple(texts), result


def _load(source: Path | bytes, max_bytes: int) -> bytes:
    """The document's bytes, refusing anything over `max_bytes` before reading (or parsing) it all."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        with Path(source).open("rb") as f:
            if os.fstat(f.fileno()).st_size > max_bytes:
                raise DocumentError(
                    "too_large",
                    f"The document is larger than the limit of {max_bytes} bytes.",
                    details={"limit": "max_bytes", "max": max_bytes},
                )
            # Reading one byte past the limit catches files whose size changes or lies (pipes, /proc).
            data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DocumentError(
            "too_large",
            f"The document is larger than the limit of {max_bytes} bytes.",
            details={"limit": "max_bytes", "max": max_bytes},
        )
    return data


def _decide_media_type(data: bytes, filename: str | None, declared: str | None) -> tuple[str, list[str]]:
    """The media type and any warning; content decides, a declared text type picks text vs Markdown."""
    sniffed = sniff_media_type(data[:SNIFF_BYTES], filename)
    if declared is None:
        return sniffed, []
    declared = declared.split(";", 1)[0].strip().lower()
    if sniffed in (TEXT, MARKDOWN) and declared in (TEXT, MARKDOWN):
        return declared, []
    if declared == sniffed or declared not in SUPPORTED_MEDIA_TYPES:
        # Generic or unknown declarations (application/octet-stream) say nothing: trust the content.
        return sniffed, []
    return sniffed, [f"declared media type {declared} does not match the content ({sniffed})"]
