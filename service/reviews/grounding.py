"""Grounding a corrected value again, in a child process: the caller never parses the document itself.

The child (`workers.pipeline.grounding.child`, started by module name) reads the document with the
same limits as a job and looks the values up; only evidence offsets, matched text and flag codes
come back. A document that cannot be read again leaves the correction ungrounded (flagged), never
refused: the reviewer has the last word.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from service.config import Settings
from service.reviews.current import CORRECTION_NOT_FOUND
from workers.documents.errors import DocumentError
from workers.documents.sandbox import ChildLimits, run_in_child

CHILD_MODULE: Final = "workers.pipeline.grounding.child"
_OUTPUT_BYTES: Final = 8 * 1024 * 1024
_MESSAGE: Final = "The corrected value was not found in the source text."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grounded:
    """Evidence per value path, and flags for the values found nowhere (or only approximately)."""

    evidence: dict[str, Any]
    flags: list[dict[str, Any]]


def _limits(settings: Settings) -> dict[str, Any]:
    ocr = None
    if settings.ocr_enabled:
        ocr = {
            "engine": settings.ocr_engine,
            "max_pages": settings.ocr_max_pages,
            "timeout_s": settings.ocr_timeout_s,
            "max_pixels": settings.ocr_max_pixels,
            "min_confidence": settings.ocr_min_confidence,
            "dpi": settings.ocr_dpi,
            "memory_mb": settings.ocr_memory_mb,
            "threads": settings.ocr_threads,
        }
    return {
        "max_bytes": settings.max_document_bytes,
        "max_pages": settings.max_pages,
        "max_chars": settings.max_chars,
        "timeout_s": settings.parse_timeout_s,
        "memory_mb": settings.parse_memory_mb,
        "ocr": ocr,
    }


def ground_correction(settings: Settings, data: bytes, media_type: str, field: str, value: Any) -> Grounded:
    """Evidence for `value` as the field `field` of the document `data`; flagged where it is not found."""
    limits = _limits(settings)
    ocr_s = settings.ocr_timeout_s if settings.ocr_enabled else 0.0
    child = ChildLimits(
        # Room for the reader's own children (text, boxes, OCR), each bounded on its own.
        timeout_s=3 * settings.parse_timeout_s + ocr_s + 5.0,
        memory_mb=max(settings.parse_memory_mb, settings.ocr_memory_mb if settings.ocr_enabled else 0) + 512,
        # The reader writes the document to its own temp files: a file limit below its size would stop it.
        output_bytes=settings.max_document_bytes + _OUTPUT_BYTES,
        threads=4,
    )
    with tempfile.TemporaryDirectory(prefix="abstractor-ground-") as tmp:
        workdir = Path(tmp)
        path = workdir / "input"
        path.write_bytes(data)
        payload = {"path": str(path), "media_type": media_type, "limits": limits, "values": {field: value}}
        try:
            run = run_in_child(CHILD_MODULE, payload, limits=child, workdir=workdir)
        except DocumentError as e:
            log.warning("correction not grounded", extra={"error_code": e.code})
            return Grounded({}, [{"path": field, "code": CORRECTION_NOT_FOUND, "message": _MESSAGE}])
    flags = []
    for flag in run.payload["flags"]:
        code = CORRECTION_NOT_FOUND if flag["code"] == "not_found_in_source" else str(flag["code"])
        message = _MESSAGE if code == CORRECTION_NOT_FOUND else "The corrected value only approximately matches."
        flags.append({"path": str(flag["path"]), "code": code, "message": message})
    return Grounded(dict(run.payload["evidence"]), flags)
