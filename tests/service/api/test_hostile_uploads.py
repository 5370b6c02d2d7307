"""Cut and unfinished uploads: refused with a code, and nothing of them is kept (row, blob or temp file).

A multipart body that ends inside the file part (or anywhere before its closing `--boundary--`) may be
any prefix of the document: python-multipart's `finalize()` checks nothing, so `spool_upload` does.
The server stores document bytes as files here (`blob_dir`), so "nothing kept" covers the blob folder.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from service.processes.embedded import build_embedded_app
from service.store.session import make_engine, make_session_factory
from tests.service.api.conftest import ADMIN_TOKEN, api_settings_for
from tests.support.api import TenantKey, make_tenant
from tests.support.engines import DeterministicEngine
from tests.support.raw_http import open_socket, read_response, request_head
from tests.support.servers import ThreadedServer

BOUNDARY = "hostile-upload-boundary"
MARKER = f"CANARY{uuid.uuid4().hex}"
NOTE = f"Patient {MARKER} was seen on 2024-03-01 for chest pain.\n".encode() * 40
PART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{MARKER}.txt"\r\n'
    "Content-Type: text/plain\r\n\r\n"
).encode()
WHOLE = PART_HEAD + NOTE + f"\r\n--{BOUNDARY}--\r\n".encode()


class Uploads:
    """A server storing blobs on disk, its folders, and a superuser view of its documents."""

    def __init__(self, server: ThreadedServer, data_dir: Path, blob_dir: Path, pg_url: str) -> None:
        self.server = server
        self.data_dir = data_dir
        self.blob_dir = blob_dir
        self.engine = make_engine(pg_url)

    def documents(self, tenant: TenantKey) -> int:
        with self.engine.connect() as connection:
            query = text("SELECT count(*) FROM documents WHERE tenant_id = :t")
            return int(connection.execute(query, {"t": uuid.UUID(tenant.tenant_id)}).scalar_one())

    def refused(self, code: str) -> float:
        """The server's own count of uploads refused with `code` (its /metrics)."""
        body = httpx.get(f"{self.server.base_url}/metrics", timeout=30).text
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == "abstractor_uploads_refused_total" and sample.labels.get("code") == code:
                    return sample.value
        return 0.0

    def leftovers(self) -> list[Path]:
        found = [p for p in self.blob_dir.rglob("*") if p.is_file()]
        uploads = self.data_dir / "tmp" / "uploads"
        return found + (list(uploads.iterdir()) if uploads.exists() else [])


@pytest.fixture(scope="module")
def uploads(api_db: Engine, api_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uploads]:
    data_dir = tmp_path_factory.mktemp("hostile-uploads")
    blob_dir = data_dir / "blobs"
    settings = api_settings_for(api_pg_url, data_dir, blob_dir=blob_dir)
    app = build_embedded_app(
        settings, engine=DeterministicEngine(), session_factory=make_session_factory(api_db), poll_s=0.2
    )
    with ThreadedServer(app, settings=settings) as server:
        view = Uploads(server, data_dir, blob_dir, api_pg_url)
        yield view
        view.engine.dispose()


@pytest.fixture
def tenant(uploads: Uploads) -> TenantKey:
    with httpx.Client(base_url=uploads.server.base_url) as client:
        return make_tenant(client, ADMIN_TOKEN)


def _post(uploads: Uploads, tenant: TenantKey, body: bytes | Iterator[bytes]) -> httpx.Response:
    headers = {**tenant.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    started = time.monotonic()
    response = httpx.post(f"{uploads.server.base_url}/v1/documents", content=body, headers=headers, timeout=30)
    assert time.monotonic() - started < 5.0
    return response


CUTS = {
    "inside-the-file": PART_HEAD + NOTE[: len(NOTE) // 2],
    "at-the-end-of-the-file": PART_HEAD + NOTE,
    "boundary-without-its-dashes": PART_HEAD + NOTE + f"\r\n--{BOUNDARY}".encode(),
    "one-dash-short": WHOLE.rstrip(b"\r\n")[:-1],
    "inside-the-part-headers": PART_HEAD[: len(PART_HEAD) // 2],
    "after-the-opening-boundary": f"--{BOUNDARY}\r\n".encode(),
    "a-second-part-cut": PART_HEAD
    + NOTE
    + f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhal'.encode(),
    "empty": b"",
}


@pytest.mark.parametrize("body", list(CUTS.values()), ids=list(CUTS))
def test_a_truncated_multipart_body_is_refused_and_nothing_is_stored(
    uploads: Uploads, tenant: TenantKey, body: bytes
) -> None:
    response = _post(uploads, tenant, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "truncated_upload" and error["details"] == {"bytes_read": len(body)}
    assert MARKER not in response.text
    assert uploads.documents(tenant) == 0
    assert uploads.leftovers() == []


def test_a_truncated_chunked_body_is_refused_too(uploads: Uploads, tenant: TenantKey) -> None:
    def chunks() -> Iterator[bytes]:
        yield PART_HEAD
        for i in range(0, len(NOTE), 100):
            yield NOTE[i : i + 100]  # and then the body ends: no closing boundary

    response = _post(uploads, tenant, chunks())
    assert response.status_code == 400 and response.json()["error"]["code"] == "truncated_upload"
    assert uploads.documents(tenant) == 0 and uploads.leftovers() == []


def test_a_client_that_leaves_mid_upload_leaves_nothing(uploads: Uploads, tenant: TenantKey) -> None:
    sock = open_socket(uploads.server.base_url)
    headers = {
        "Host": "127.0.0.1",
        "Authorization": f"Bearer {tenant.key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(len(WHOLE)),
    }
    before = uploads.refused("client_disconnected")
    sock.sendall(request_head("POST", "/v1/documents", headers) + WHOLE[: len(WHOLE) // 2])
    sock.close()
    # The server counts the refusal after its temporary file is gone: wait for that, not for a guess.
    deadline = time.monotonic() + 60
    while uploads.refused("client_disconnected") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uploads.refused("client_disconnected") == before + 1
    assert uploads.documents(tenant) == 0 and uploads.leftovers() == []


def test_a_whole_body_is_stored_as_sent(uploads: Uploads, tenant: TenantKey) -> None:
    response = _post(uploads, tenant, WHOLE)
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == len(NOTE)
    assert uploads.documents(tenant) == 1
    blobs = [p for p in uploads.blob_dir.rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in blobs if p.stat().st_size == len(NOTE)] == [NOTE]
    # Epilogue bytes after the closing boundary are ignored, as RFC 2046 says.
    again = _post(uploads, tenant, WHOLE + b"trailing epilogue")
    assert again.status_code == 200 and again.json()["id"] == response.json()["id"]


def test_a_truncated_upload_is_audited_as_refused(uploads: Uploads, tenant: TenantKey, api_pg_url: str) -> None:
    response = _post(uploads, tenant, CUTS["inside-the-file"])
    request_id = response.headers["x-request-id"]
    with uploads.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT action, outcome, details FROM audit_events WHERE request_id = :r"), {"r": request_id}
        ).all()
    assert [(r.action, r.outcome, r.details["error_code"]) for r in rows] == [
        ("document.upload", "failure", "truncated_upload")
    ]
    assert MARKER not in repr(rows)


def test_a_raw_truncated_body_gets_its_answer_in_time(uploads: Uploads, tenant: TenantKey) -> None:
    # As a hand-written client would send it: Content-Length matches what is sent, the boundary never comes.
    body = CUTS["inside-the-file"]
    sock = open_socket(uploads.server.base_url)
    headers = {
        "Host": "127.0.0.1",
        "Authorization": f"Bearer {tenant.key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(len(body)),
    }
    started = time.monotonic()
    sock.sendall(request_head("POST", "/v1/documents", headers) + body)
    response = read_response(sock, started)
    sock.close()
    assert response is not None and response.status == 400 and response.elapsed_s < 5.0
    assert response.json()["error"]["code"] == "truncated_upload"
