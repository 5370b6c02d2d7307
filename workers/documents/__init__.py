"""Reading PDFs and text notes into one canonical text with page offsets, inside resource limits; OCR for scans.

The names below are loaded when first used (PEP 562), not when the package is: the API imports
`workers.documents.sniff` to judge an upload's type, and must not load the PDF, OCR and sandbox code
that reading needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.documents.errors import DOCUMENT_ERROR_CODES, DocumentError, DocumentErrorCode
    from workers.documents.model import Document, LimitsSpec, OcrSpec, Page
    from workers.documents.reader import read_document
    from workers.documents.sniff import sniff_media_type
    from workers.documents.text import PAGE_SEPARATOR

_HOMES = {
    "DOCUMENT_ERROR_CODES": "errors",
    "DocumentError": "errors",
    "DocumentErrorCode": "errors",
    "Document": "model",
    "LimitsSpec": "model",
    "OcrSpec": "model",
    "Page": "model",
    "read_document": "reader",
    "sniff_media_type": "sniff",
    "PAGE_SEPARATOR": "text",
}

__all__ = [
    "DOCUMENT_ERROR_CODES",
    "PAGE_SEPARATOR",
    "Document",
    "DocumentError",
    "DocumentErrorCode",
    "LimitsSpec",
    "OcrSpec",
    "Page",
    "read_document",
    "sniff_media_type",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
