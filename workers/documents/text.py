"""The canonical text: how page texts are cleaned and joined so that evidence offsets stay exact."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from workers.documents.errors import DocumentError
from workers.documents.model import Page

# A form feed on a line of its own: easy to see, and never produced inside a page by our cleaning.
PAGE_SEPARATOR: Final = "\n\f\n"


def normalise(text: str) -> str:
    """One newline convention and no NULs, nothing else: any further change would move offsets."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def decode_text(data: bytes) -> str:
    """A text note's characters; only UTF-8 (with or without BOM) is accepted, never guessed."""
    if b"\x00" in data:
        # NUL bytes mean a binary file (or UTF-16), whatever part of it the sniffer saw.
        raise DocumentError("unsupported_media_type", details={"byte_offset": data.index(b"\x00")})
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError(
            "unsupported_media_type",
            "The text is not valid UTF-8; convert it to UTF-8 and upload it again.",
            details={"byte_offset": e.start},
        ) from e


def join_pages(page_texts: Sequence[str], *, source: str = "text_layer") -> tuple[str, tuple[Page, ...]]:
    """The canonical text and each page's `[start, end)` in it; pages with no visible text are flagged."""
    parts: list[str] = []
    pages: list[Page] = []
    offset = 0
    for number, raw in enumerate(page_texts, start=1):
        text = normalise(raw)
        if number > 1:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        has_text = bool(text.strip())
        pages.append(
            Page(
                number=number,
                start=offset,
                end=offset + len(text),
                has_text=has_text,
                source=source if has_text else "none",
            )
        )
        parts.append(text)
        offset += len(text)
    return "".join(parts), tuple(pages)
