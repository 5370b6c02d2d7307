"""Deciding what a document is from its bytes, because names and declared types are often wrong."""

from __future__ import annotations

import codecs
import re
from pathlib import PurePath
from typing import Final

from workers.documents.errors import DocumentError

PDF: Final = "application/pdf"
TEXT: Final = "text/plain"
MARKDOWN: Final = "text/markdown"
SUPPORTED_MEDIA_TYPES: Final[frozenset[str]] = frozenset({PDF, TEXT, MARKDOWN})

# The PDF spec lets the header sit after some junk; Acrobat looks within the first 1024 bytes.
PDF_HEADER_WINDOW: Final = 1024
# How much of a document callers should pass in: enough to judge text and spot Markdown.
SNIFF_BYTES: Final = 64 * 1024

_MARKDOWN_SUFFIXES: Final = frozenset({".md", ".markdown"})
# Constructs that are rare in prose or clinical notes but everywhere in Markdown.
_MARKDOWN_SIGNS: Final[dict[str, re.Pattern[str]]] = {
    "heading": re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE),
    "fence": re.compile(r"^(```|~~~)", re.MULTILINE),
    "table": re.compile(r"^\|?[ \t]*:?-{3,}:?[ \t]*\|", re.MULTILINE),
    "link": re.compile(r"\[[^\]\n]+\]\([^)\s]+\)"),
    "emphasis": re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__"),
}


def sniff_media_type(head: bytes, filename: str | None = None) -> str:
    """The media type of a document judged from its first bytes; the name only tells Markdown from text.

    Raises DocumentError("unsupported_media_type") for anything that is neither a PDF nor UTF-8 text,
    and DocumentError("empty_document") for no bytes at all.
    """
    if not head:
        raise DocumentError("empty_document")
    if b"%PDF-" in head[:PDF_HEADER_WINDOW]:
        return PDF
    text = _as_text(head)
    if text is None:
        raise DocumentError("unsupported_media_type")
    if filename is not None and PurePath(filename).suffix.lower() in _MARKDOWN_SUFFIXES:
        return MARKDOWN
    return MARKDOWN if looks_like_markdown(text) else TEXT


def looks_like_markdown(text: str) -> bool:
    """True when the text shows at least two different Markdown constructs (one alone is too weak)."""
    kinds = sum(1 for pattern in _MARKDOWN_SIGNS.values() if pattern.search(text))
    headings = len(_MARKDOWN_SIGNS["heading"].findall(text))
    return kinds >= 2 or headings >= 2


def _as_text(head: bytes) -> str | None:
    """The head decoded as UTF-8, or None if it is binary (NUL bytes or invalid UTF-8)."""
    if b"\x00" in head:
        return None
    # Not final: the head may end in the middle of a multi-byte character.
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    try:
        return decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return None
