"""Media-type sniffing decides by content; the name only tells Markdown from plain text."""

from __future__ import annotations

import pytest

from workers.documents import DocumentError, sniff_media_type


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        pytest.param(b"%PDF-1.7\n...", None, "application/pdf", id="pdf"),
        pytest.param(b"\x00" * 500 + b"%PDF-1.4", "scan.bin", "application/pdf", id="pdf-after-junk"),
        pytest.param(b"%PDF-1.4", "notes.md", "application/pdf", id="pdf-named-md"),
        pytest.param(b"Progress note\nStable.\n", None, "text/plain", id="text"),
        pytest.param(b"Progress note\n", "note.MD", "text/markdown", id="md-by-name"),
        pytest.param(b"Progress note\n", "note.markdown", "text/markdown", id="markdown-by-name"),
        pytest.param(b"# Title\n\nSee [the chart](http://x/y).\n", None, "text/markdown", id="md-by-content"),
        pytest.param(b"# One heading\nplain text\n", None, "text/plain", id="one-sign-is-not-enough"),
        pytest.param("Übelkeit".encode()[:-1] + "é".encode()[:1], None, "text/plain", id="cut-mid-character"),
        pytest.param(b" " * 1100 + b"%PDF-1.4", None, "text/plain", id="pdf-header-too-late"),
    ],
)
def test_sniff(head: bytes, filename: str | None, expected: str) -> None:
    assert sniff_media_type(head, filename) == expected


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n", id="png"),
        pytest.param(b"\xff\xd8\xff\xe0", id="jpeg"),
        pytest.param(b"text with a NUL\x00 byte", id="nul"),
        pytest.param("café au lait".encode("latin-1"), id="latin-1"),
    ],
)
def test_unsupported(head: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        sniff_media_type(head, "file.pdf")
    assert caught.value.code == "unsupported_media_type"


def test_empty() -> None:
    with pytest.raises(DocumentError) as caught:
        sniff_media_type(b"")
    assert caught.value.code == "empty_document"
