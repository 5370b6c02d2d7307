"""Uploads: the size limit holds before the body is read, the type is judged by content, temp files go."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.api.conftest import UPLOAD_LIMIT
from tests.support.api import TenantKey
from tests.support.servers import ThreadedServer

BOUNDARY = "abstractor-test-boundary"
MIB = 1024 * 1024


def _bytes_read(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    match = re.search(r"^abstractor_upload_bytes_read_total ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, "upload byte counter missing from /metrics"
    return float(match.group(1))


def _chunked_multipart(total: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """A multipart body of `total` payload bytes, made on the fly (no Content-Length: chunked)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    block = b"a" * chunk
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_200_mb_chunked_upload_is_refused_within_limit_plus_1_mb(
    server: ThreadedServer,
    client: httpx.Client,
    tenant_a: TenantKey,
    data_dir: Path,
    audit_rows: Callable[..., list[dict[str, Any]]],
) -> None:
    before = _bytes_read(client)
    generated = 0

    def body() -> Iterator[bytes]:
        nonlocal generated
        for piece in _chunked_multipart(200 * MIB):
            generated += len(piece)
            yield piece

    response = client.post(
        "/v1/documents",
        content=body(),
        headers={**tenant_a.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    consumed = _bytes_read(client) - before

    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_large"
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert UPLOAD_LIMIT < consumed <= UPLOAD_LIMIT + MIB, consumed
    # The client stopped early too: the server closed the connection instead of draining 200 MB.
    assert generated < 50 * MIB, generated
    assert list((data_dir / "tmp" / "uploads").iterdir()) == []
    refused = audit_rows(action="document.upload", outcome="failure")
    assert any(r["details"]["error_code"] == "too_large" for r in refused)


def test_declared_content_length_over_the_limit_is_refused_unread(client: httpx.Client, tenant_a: TenantKey) -> None:
    before = _bytes_read(client)
    payload = b"b" * (UPLOAD_LIMIT + 128 * 1024)
    response = client.post("/v1/documents", files={"file": ("x.txt", payload)}, headers=tenant_a.headers)
    assert response.status_code == 413
    assert _bytes_read(client) - before == 0


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("scan.pdf", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)),  # a PNG named .pdf
        ("note.txt", b"\xff\xfe\x00binary\x00\x01\x02"),  # not UTF-8 text
    ],
    ids=["png-named-pdf", "binary-named-txt"],
)
def test_media_type_is_judged_by_content(
    client: httpx.Client, tenant_a: TenantKey, data_dir: Path, filename: str, content: bytes
) -> None:
    response = client.post(
        "/v1/documents", files={"file": (filename, content, "application/pdf")}, headers=tenant_a.headers
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert list((data_dir / "tmp" / "uploads").iterdir()) == []


def test_a_text_named_pdf_is_stored_as_text(client: httpx.Client, tenant_a: TenantKey) -> None:
    response = client.post("/v1/documents", files={"file": ("a.pdf", b"plain words\n")}, headers=tenant_a.headers)
    assert response.status_code == 201 and response.json()["media_type"] == "text/plain"
    again = client.post("/v1/documents", files={"file": ("b.txt", b"plain words\n")}, headers=tenant_a.headers)
    assert again.status_code == 200 and again.json()["id"] == response.json()["id"]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Content-Type": "application/json"}, b"{}", 415, "unsupported_request_type"),
        ({"Content-Type": "multipart/form-data"}, b"--x--", 422, "invalid_multipart"),
        (
            {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            f"--{BOUNDARY}--\r\n".encode(),
            422,
            "missing_file",
        ),
    ],
    ids=["json-body", "no-boundary", "no-file-part"],
)
def test_malformed_uploads_get_the_error_model(
    client: httpx.Client, tenant_a: TenantKey, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    response = client.post("/v1/documents", content=body, headers={**tenant_a.headers, **headers})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
