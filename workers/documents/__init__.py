"""Reading PDFs and text notes into one canonical text with page offsets, inside resource limits; OCR for scans."""

from workers.documents.errors import DOCUMENT_ERROR_CODES, DocumentError, DocumentErrorCode
from workers.documents.model import Document, LimitsSpec, OcrSpec, Page
from workers.documents.reader import read_document
from workers.documents.sniff import sniff_media_type
from workers.documents.text import PAGE_SEPARATOR

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
