"""The one error a caller of `read_document` must handle: the document itself cannot be read.

Every failure carries a stable `code` so the API and the CLI can react without parsing
messages; messages are written for users and never quote document content.
"""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

from workers.errors import BadInputError

DocumentErrorCode = Literal[
    "invalid_pdf",
    "encrypted",
    "too_large",
    "timeout",
    "unsupported_media_type",
    "empty_document",
    "parser_crashed",
    "no_text",
]

DOCUMENT_ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(DocumentErrorCode))

_DEFAULT_MESSAGES: Final[dict[str, str]] = {
    "invalid_pdf": "The file is not a readable PDF: it is damaged or malformed.",
    "encrypted": "The PDF is encrypted and no valid password was given.",
    "too_large": "The document exceeds the size limits for reading.",
    "timeout": "Reading the document took longer than the time limit.",
    "unsupported_media_type": (
        "Unsupported document type: only PDF, and plain text or Markdown encoded as UTF-8, are accepted."
    ),
    "empty_document": "The document is empty.",
    "parser_crashed": "The document parser crashed while reading this file.",
    "no_text": "The document has no extractable text (scanned pages need OCR).",
}


class DocumentError(BadInputError):
    """A document that cannot be read as given; never retried. `code` is one of DOCUMENT_ERROR_CODES."""

    code: str = "invalid_pdf"

    def __init__(
        self,
        code: DocumentErrorCode,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        # An unknown code is a bug in our code, not bad input: fail loudly.
        if code not in DOCUMENT_ERROR_CODES:
            raise ValueError(f"unknown document error code: {code!r}")
        super().__init__(message or _DEFAULT_MESSAGES[code], code=code, details=details)
