"""A unique marker pushed through every path that touches content must never reach a log or the audit trail.

DEBUG everywhere, every log record captured (our JSON handler on stderr, a second handler that also
renders arguments and tracebacks, and the process's own stdout/stderr), then grepped, with the whole
audit table, for the marker. It does appear where it belongs: in the stored record the API returns.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from service.api.observability import configure_api_logging, install_log_context
from service.logs import JsonFormatter
from service.processes.embedded import build_embedded_app
from service.store.session import make_engine, make_session_factory
from tests.service.api.conftest import ADMIN_TOKEN, api_settings_for
from tests.support.api import make_tenant, upload, wait_for_job
from tests.support.engines import DeterministicEngine
from tests.support.servers import ThreadedServer

STRICT_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^[0-9]+$"}},
    "required": ["code"],
}


class _Everything(logging.Formatter):
    """Renders what a careless handler would: message with args, every extra, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{record.name} {record.getMessage()} {vars(record)!r}"
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """DEBUG on the root logger with our JSON handler plus a render-everything handler; restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_api_logging("DEBUG")
    sink = io.StringIO()
    everything = logging.StreamHandler(sink)
    everything.setFormatter(_Everything())
    json_copy = logging.StreamHandler(sink)
    json_copy.setFormatter(JsonFormatter())
    root.addHandler(everything)
    root.addHandler(json_copy)
    install_log_context()
    yield sink
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_marker_never_reaches_logs_or_audit(
    debug_logs: io.StringIO,
    capfd: pytest.CaptureFixture[str],
    api_db: Engine,
    api_pg_url: str,
    tmp_path: Path,
) -> None:
    marker = f"CANARY{uuid.uuid4().hex}"
    settings = api_settings_for(api_pg_url, tmp_path, log_level="DEBUG")
    app = build_embedded_app(
        settings, engine=DeterministicEngine(), session_factory=make_session_factory(api_db), poll_s=0.1
    )
    with ThreadedServer(app) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        tenant = make_tenant(client, ADMIN_TOKEN)
        # The happy path: upload, extract (the test engine copies the first word: the marker), read back.
        document = upload(client, tenant, f"{marker} agreed with Acme in Delaware.\n".encode(), f"{marker}.txt")
        submitted = client.post(
            "/v1/extractions", json={"document_id": document["id"], "schema_name": "nda"}, headers=tenant.headers
        )
        job = wait_for_job(client, tenant, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["data"]["jurisdiction"] == marker  # the value really flowed through
        assert client.get(f"/v1/documents/{document['id']}", headers=tenant.headers).status_code == 200

        # A failing job on the same document: the engine cannot satisfy this schema.
        name = f"strict{uuid.uuid4().hex[:6]}"
        client.post("/v1/schemas", json={"name": name, "json_schema": STRICT_SCHEMA}, headers=tenant.headers)
        failed = client.post(
            "/v1/extractions", json={"document_id": document["id"], "schema_name": name}, headers=tenant.headers
        )
        failed_job = wait_for_job(client, tenant, failed.json()["id"])
        assert failed_job["status"] == "failed", failed_job
        assert marker not in str(failed_job["error"])

        # Refusals: a binary file carrying the marker, an oversized one, a request body quoting it.
        binary = marker.encode() + b"\x00\xff\xfe binary"
        assert (
            client.post("/v1/documents", files={"file": ("x.bin", binary)}, headers=tenant.headers).status_code == 415
        )
        big = (marker + " ").encode() * (settings.max_document_bytes // len(marker) + 10)
        assert client.post("/v1/documents", files={"file": ("big.txt", big)}, headers=tenant.headers).status_code == 413
        bad = client.post(
            "/v1/extractions", json={"document_id": marker, "schema_name": marker}, headers=tenant.headers
        )
        assert bad.status_code == 422 and marker not in bad.text
        bad_schema = client.post(
            "/v1/schemas", json={"name": "x", "json_schema": {"type": marker}}, headers=tenant.headers
        )
        assert bad_schema.status_code == 422
        # Unknown-key attempts carry the marker in a header.
        assert client.get("/v1/schemas", headers={"X-API-Key": marker}).status_code == 401

    captured = capfd.readouterr()
    logs = debug_logs.getvalue()
    assert "job succeeded" in logs and "document read" in logs  # DEBUG logging really ran
    for name, text_ in (("log handlers", logs), ("stdout", captured.out), ("stderr", captured.err)):
        assert marker not in text_, f"marker leaked to {name}"
    assert marker.lower() not in logs.lower()

    audit_engine = make_engine(api_pg_url)
    try:
        with audit_engine.connect() as connection:
            rows = connection.execute(text("SELECT audit_events::text FROM audit_events")).scalars().all()
    finally:
        audit_engine.dispose()
    assert rows and not [r for r in rows if marker in r]
