"""Acceptance: one signed, verifiable notification per finished job to a real receiver; SSRF refusals;
retries with backoff; redirects not followed; DNS rebinding caught at delivery time."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from service.store import repositories as repo
from service.store.models import JobStatus, WebhookDelivery
from service.store.session import make_engine, make_session_factory, run_migrations
from service.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookDeliverer,
    verify_signature,
)
from tests.service.api.conftest import ADMIN_TOKEN
from tests.service.webhooks.conftest import BACKOFF_S, MAX_ATTEMPTS, SECRET, Receiver
from tests.support.api import TenantKey, make_tenant, upload, wait_for_job
from tests.support.servers import ThreadedServer


def _submit(client: httpx.Client, tenant: TenantKey, document_id: str, webhook_url: str) -> httpx.Response:
    return client.post(
        "/v1/extractions",
        json={"document_id": document_id, "schema_name": "nda", "webhook_url": webhook_url},
        headers=tenant.headers,
    )


def _deliveries(factory: sessionmaker[Session], job_id: str) -> list[WebhookDelivery]:
    with factory() as session:
        query = select(WebhookDelivery).where(WebhookDelivery.job_id == uuid.UUID(job_id)).order_by(WebhookDelivery.id)
        return list(session.scalars(query))


def _wait_settled(factory: sessionmaker[Session], job_ids: list[str], timeout: float = 30.0) -> None:
    """Until every notification of these jobs is delivered or given up: the deliverer claims pending rows
    only, so once they are settled nothing more can be sent for these jobs."""
    deadline = time.monotonic() + timeout
    while any(r.delivered_at is None and r.gave_up_at is None for j in job_ids for r in _deliveries(factory, j)):
        assert time.monotonic() < deadline, "notifications still pending"
        time.sleep(0.05)


def test_one_verified_notification_per_finished_job(
    hook_client: httpx.Client, hook_tenant: TenantKey, receiver: Receiver, factory: sessionmaker[Session]
) -> None:
    marker = f"Zanzibarco{uuid.uuid4().hex[:8]}"  # the deterministic engine extracts this first word
    good = upload(hook_client, hook_tenant, f"{marker} agreement between two parties.\n".encode())
    bad = upload(hook_client, hook_tenant, b"%PDF-1.7\nnot a pdf at all " + uuid.uuid4().hex.encode(), "bad.pdf")
    jobs = {}
    for document, label in ((good, "good"), (bad, "bad")):
        response = _submit(hook_client, hook_tenant, document["id"], f"{receiver.url}/hooks/{label}?k=1")
        assert response.status_code == 202, response.text
        jobs[label] = wait_for_job(hook_client, hook_tenant, response.json()["id"])
    assert jobs["good"]["status"] == "succeeded" and jobs["good"]["result"]["data"]["jurisdiction"] == marker
    assert jobs["bad"]["status"] == "failed"

    received = receiver.wait_for(2)
    _wait_settled(factory, [jobs["good"]["id"], jobs["bad"]["id"]])  # a duplicate would be a row still pending
    assert len(receiver.requests) == 2
    by_path = {r.path: r for r in received}
    assert set(by_path) == {"/hooks/good?k=1", "/hooks/bad?k=1"}
    for label, expected_type in (("good", "job.succeeded"), ("bad", "job.failed")):
        request = by_path[f"/hooks/{label}?k=1"]
        assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER.lower()], request.body)
        assert not verify_signature("another-secret", request.headers[SIGNATURE_HEADER.lower()], request.body)
        payload: dict[str, Any] = json.loads(request.body)
        assert payload["type"] == request.headers[EVENT_HEADER.lower()] == expected_type
        assert payload["id"] == request.headers[DELIVERY_HEADER.lower()]
        job = payload["job"]
        assert job["id"] == jobs[label]["id"] and job["status"] == jobs[label]["status"]
        assert job["document_id"] == jobs[label]["document_id"] and job["schema"] == "nda@1"
        assert request.headers["content-type"] == "application/json"
        [row] = _deliveries(factory, job["id"])
        assert row.delivered_at is not None and row.attempts == 1 and row.last_status_code == 204
    assert json.loads(by_path["/hooks/bad?k=1"].body)["job"]["error_code"] == "invalid_pdf"
    # ids and status only: neither an extracted value nor document text.
    for request in received:
        assert marker.encode() not in request.body and b"agreement" not in request.body


def test_a_failing_receiver_is_retried_with_backoff(
    hook_client: httpx.Client, hook_tenant: TenantKey, receiver: Receiver, factory: sessionmaker[Session]
) -> None:
    receiver.script.append((503, {}))
    document = upload(hook_client, hook_tenant, f"Retry {uuid.uuid4().hex}.\n".encode())
    response = _submit(hook_client, hook_tenant, document["id"], f"{receiver.url}/retry")
    wait_for_job(hook_client, hook_tenant, response.json()["id"])
    first, second = receiver.wait_for(2)
    assert first.headers[DELIVERY_HEADER.lower()] == second.headers[DELIVERY_HEADER.lower()]  # one event, twice
    assert first.body == second.body
    assert verify_signature(SECRET, second.headers[SIGNATURE_HEADER.lower()], second.body)
    _wait_settled(factory, [response.json()["id"]])
    [row] = _deliveries(factory, response.json()["id"])
    assert row.delivered_at is not None and row.attempts == 2 and row.last_status_code == 204
    assert (row.delivered_at - row.created_at).total_seconds() >= BACKOFF_S * 0.8  # waited before retrying
    # The job's one notification is delivered (settled above), so no further attempt can follow.
    assert len(receiver.requests) == 2


def test_redirects_are_not_followed(
    hook_client: httpx.Client,
    hook_tenant: TenantKey,
    receiver: Receiver,
    other_receiver: Receiver,
    factory: sessionmaker[Session],
) -> None:
    receiver.script.extend([(307, {"Location": f"{other_receiver.url}/stolen"})] * MAX_ATTEMPTS)
    document = upload(hook_client, hook_tenant, f"Redirect {uuid.uuid4().hex}.\n".encode())
    response = _submit(hook_client, hook_tenant, document["id"], f"{receiver.url}/moved")
    job_id = response.json()["id"]
    wait_for_job(hook_client, hook_tenant, job_id)
    receiver.wait_for(MAX_ATTEMPTS)
    deadline = time.monotonic() + 10
    while _deliveries(factory, job_id)[0].gave_up_at is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [row] = _deliveries(factory, job_id)
    assert row.delivered_at is None and row.attempts == MAX_ATTEMPTS and row.last_status_code == 307
    assert other_receiver.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://0.0.0.0:{port}/hook",
        "https://user:pass@example.com/hook",
    ],
    ids=["loopback", "localhost", "ipv6-loopback", "mapped-loopback", "metadata", "private", "unspecified", "creds"],
)
def test_non_public_webhook_urls_are_refused_at_submission(
    guarded_server: ThreadedServer, receiver: Receiver, url: str, audit_rows_pg: Any
) -> None:
    with httpx.Client(base_url=guarded_server.base_url, timeout=30.0) as client:
        tenant = make_tenant(client, ADMIN_TOKEN)
        document = upload(client, tenant, f"Guarded {uuid.uuid4().hex}.\n".encode())
        port = receiver.server.server_address[1]
        response = _submit(client, tenant, document["id"], url.format(port=port))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "webhook_url_refused"
    rows = audit_rows_pg(response.headers["x-request-id"])
    assert [(r["action"], r["outcome"]) for r in rows] == [("extraction.submit", "failure")]
    assert receiver.requests == []


@pytest.fixture
def audit_rows_pg(factory: sessionmaker[Session]) -> Any:
    """Audit events of one request id."""

    def rows(request_id: str) -> list[dict[str, Any]]:
        with factory() as session:
            result = session.execute(
                text("SELECT action, outcome FROM audit_events WHERE request_id = :r ORDER BY seq"), {"r": request_id}
            )
            return [dict(r._mapping) for r in result]

    return rows


def _settled_job_with_webhook(factory: sessionmaker[Session], url: str) -> uuid.UUID:
    """A succeeded job with a webhook, its notification queued as the worker would (same transaction)."""
    with factory.begin() as session:
        tenant = repo.create_tenant(session, f"rebind-{uuid.uuid4().hex[:8]}")
        document, _ = repo.add_document(
            session, tenant.id, f"Rebind {uuid.uuid4().hex}.\n".encode(), media_type="text/plain"
        )
        job, _ = repo.create_job(
            session,
            tenant.id,
            document.id,
            schema_name="nda",
            schema_version=1,
            model="m",
            backend="b",
            webhook_url=url,
        )
        assert repo.transition(session, job, [JobStatus.QUEUED], JobStatus.RUNNING)
        assert repo.transition(session, job, [JobStatus.RUNNING], JobStatus.SUCCEEDED)
        assert repo.enqueue_job_webhook(session, job.id) is not None
        return job.id


@pytest.fixture
def own_factory(tmp_path: Path) -> sessionmaker[Session]:
    """A store of its own (SQLite), so the shared server's deliverer cannot take these rows first."""
    url = f"sqlite:///{tmp_path / 'hooks.db'}"
    run_migrations(url)
    return make_session_factory(make_engine(url))


def test_dns_rebinding_is_caught_at_delivery(own_factory: sessionmaker[Session], receiver: Receiver) -> None:
    """The name looked public at submission; at delivery it resolves to loopback: nothing is sent."""
    factory = own_factory
    port = receiver.server.server_address[1]
    job_id = _settled_job_with_webhook(factory, f"http://hooks.rebind.test:{port}/x")
    deliverer = WebhookDeliverer(factory, secret=SECRET, resolve=lambda host, p: ["127.0.0.1"])
    deliverer.drain()
    [row] = _deliveries(factory, str(job_id))
    assert row.gave_up_at is not None and row.delivered_at is None
    assert row.last_error == "webhook_url_refused:non_public_address"
    assert receiver.requests == []


def test_delivery_goes_to_the_checked_address_with_the_original_host(
    own_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    """An allow-listed name is pinned to the address just checked; the receiver still sees its own name."""
    factory = own_factory
    port = receiver.server.server_address[1]
    job_id = _settled_job_with_webhook(factory, f"http://hooks.internal.test:{port}/pinned")
    deliverer = WebhookDeliverer(
        factory, secret=SECRET, allow_hosts=["hooks.internal.test"], resolve=lambda host, p: ["127.0.0.1"]
    )
    deliverer.drain()
    [request] = receiver.wait_for(1)
    assert request.headers["host"] == f"hooks.internal.test:{port}" and request.path == "/pinned"
    assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER.lower()], request.body)
    with factory() as session:
        delivered = session.scalar(select(WebhookDelivery.delivered_at).where(WebhookDelivery.job_id == job_id))
    assert delivered is not None
