"""Plain-text and Markdown notes, and the inputs we refuse before any parsing."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from workers.documents import DocumentError, LimitsSpec, read_document

NOTE = "Patient: Jane Roe\nDx: type 2 diabetes\nPlan: metformin 500 mg BID\n"
MARKDOWN_NOTE = "# Discharge summary\n\n## Medications\n\n- **metformin** 500 mg\n"
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + zlib.compress(b"\x00" * 64)


def test_plain_text_is_one_page() -> None:
    doc = read_document(NOTE.encode())
    assert doc.media_type == "text/plain"
    assert doc.text == NOTE
    assert len(doc.pages) == 1
    page = doc.pages[0]
    assert (page.number, page.start, page.end, page.has_text, page.source) == (
        1,
        0,
        len(NOTE),
        True,
        "text_layer",
    )
    assert doc.page_at(len(NOTE) - 1) == 1
    assert doc.warnings == ()


def test_line_ends_and_bom_are_normalised() -> None:
    raw = "\ufeffline one\r\nline two\rline three\n".encode()
    assert read_document(raw).text == "line one\nline two\nline three\n"


@pytest.mark.parametrize("at", [10, 100_000], ids=["in-sniffed-head", "after-sniffed-head"])
def test_nul_bytes_mean_binary(at: int) -> None:
    data = bytearray(b"a" * 200_000)
    data[at] = 0
    with pytest.raises(DocumentError) as caught:
        read_document(bytes(data))
    assert caught.value.code == "unsupported_media_type"


def test_markdown_by_name(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text(NOTE, encoding="utf-8")
    doc = read_document(path)
    assert doc.media_type == "text/markdown"
    assert doc.text == NOTE


def test_markdown_by_content() -> None:
    assert read_document(MARKDOWN_NOTE.encode()).media_type == "text/markdown"


def test_declared_type_chooses_between_text_and_markdown_only() -> None:
    assert read_document(NOTE.encode(), media_type="text/markdown; charset=utf-8").media_type == "text/markdown"
    assert read_document(MARKDOWN_NOTE.encode(), media_type="text/plain").media_type == "text/plain"
    assert read_document(NOTE.encode(), media_type="application/octet-stream").media_type == "text/plain"
    doc = read_document(NOTE.encode(), media_type="application/pdf")
    assert doc.media_type == "text/plain"
    assert doc.warnings == ("declared media type application/pdf does not match the content (text/plain)",)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("Befund: Übelkeit, café\n".encode("latin-1"), id="latin-1"),
        pytest.param("note".encode("utf-16"), id="utf-16"),
        pytest.param(PNG_HEAD, id="png"),
        pytest.param(b"PK\x03\x04\x14\x00\x00\x00", id="zip-docx"),
    ],
)
def test_unsupported_bytes(data: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        read_document(data)
    assert caught.value.code == "unsupported_media_type"


def test_invalid_utf8_after_the_sniffed_head() -> None:
    data = b"a" * (128 * 1024) + "é".encode("latin-1")
    with pytest.raises(DocumentError) as caught:
        read_document(data)
    assert caught.value.code == "unsupported_media_type"
    assert caught.value.details == {"byte_offset": 128 * 1024}


@pytest.mark.parametrize("data", [b"", b" \n\t\r\n", b"\xef\xbb\xbf"], ids=["empty", "whitespace", "bom-only"])
def test_empty_documents(data: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        read_document(data)
    assert caught.value.code == "empty_document"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(DocumentError) as caught:
        read_document(path)
    assert caught.value.code == "empty_document"


def test_over_max_bytes_is_refused_before_reading(tmp_path: Path) -> None:
    limits = LimitsSpec(max_bytes=1000)
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 1001)
    for source in (path, path.read_bytes()):
        with pytest.raises(DocumentError) as caught:
            read_document(source, limits=limits)
        assert caught.value.code == "too_large"
        assert caught.value.details == {"limit": "max_bytes", "max": 1000}
    assert read_document(b"x" * 1000, limits=limits).size_bytes == 1000


def test_over_max_chars_never_echoes_the_text() -> None:
    secret = "SECRET-DIAGNOSIS-" * 10
    with pytest.raises(DocumentError) as caught:
        read_document(secret.encode(), limits=LimitsSpec(max_chars=50))
    assert caught.value.code == "too_large"
    assert "SECRET" not in str(caught.value.to_dict())


def test_pdf_header_wins_over_a_text_name(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    with pytest.raises(DocumentError) as caught:
        read_document(path)
    assert caught.value.code == "invalid_pdf"


def test_pdf_without_pages_is_empty() -> None:
    from tests.workers.documents.pdf_builders import minimal_pdf

    with pytest.raises(DocumentError) as caught:
        read_document(minimal_pdf([]))
    assert caught.value.code == "empty_document"
