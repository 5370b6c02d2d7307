"""Endpoint behaviour on Postgres through real HTTP: auth, error model, idempotency, schemas, probes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.service.api.conftest import ADMIN_TOKEN
from tests.support.api import TenantKey, extract_and_wait, make_tenant, upload

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _is_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer abk_000000000000_nope"}, "invalid_api_key"),
        ({"X-API-Key": "not-even-shaped-like-a-key"}, "invalid_api_key"),
        ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, "invalid_api_key"),  # the admin token is no tenant key
    ],
    ids=["none", "unknown-bearer", "unknown-header", "admin-token"],
)
def test_tenant_routes_need_a_key(client: httpx.Client, headers: dict[str, str], code: str) -> None:
    _is_error(client.get("/v1/schemas", headers=headers), 401, code)


def test_both_key_headers_work_and_revoked_keys_stop(client: httpx.Client, tenant_a: TenantKey) -> None:
    assert client.get("/v1/schemas", headers={"X-API-Key": tenant_a.key}).status_code == 200
    assert client.get("/v1/schemas", headers=tenant_a.headers).status_code == 200
    revoke = client.delete(f"/v1/admin/tenants/{tenant_a.tenant_id}/keys/{tenant_a.key_id}", headers=ADMIN)
    assert revoke.status_code == 204
    _is_error(client.get("/v1/schemas", headers=tenant_a.headers), 401, "invalid_api_key")


def test_admin_routes_need_the_admin_token(client: httpx.Client, tenant_a: TenantKey) -> None:
    _is_error(client.post("/v1/admin/tenants", json={"name": "x"}), 401, "missing_admin_token")
    _is_error(
        client.post("/v1/admin/tenants", json={"name": "x"}, headers=tenant_a.headers), 401, "invalid_admin_token"
    )
    name = f"dup-{uuid.uuid4().hex[:6]}"
    assert client.post("/v1/admin/tenants", json={"name": name}, headers=ADMIN).status_code == 201
    _is_error(client.post("/v1/admin/tenants", json={"name": name}, headers=ADMIN), 409, "conflict")
    _is_error(
        client.post(f"/v1/admin/tenants/{uuid.uuid4()}/keys", json={"name": "k"}, headers=ADMIN), 404, "not_found"
    )


def test_validation_errors_use_the_error_model_and_do_not_echo_input(client: httpx.Client, tenant_a: TenantKey) -> None:
    secret = "value-that-must-not-echo"
    response = client.post(
        "/v1/extractions", json={"document_id": secret, "schema_name": "nda", "extra": 1}, headers=tenant_a.headers
    )
    _is_error(response, 422, "validation_error")
    assert secret not in response.text
    locations = {tuple(e["loc"]) for e in response.json()["error"]["details"]["errors"]}
    # A field the client made up is located as `*`: its name is the client's, not ours.
    assert ("body", "document_id") in locations and ("body", "*") in locations
    _is_error(client.get("/v1/documents/not-a-uuid", headers=tenant_a.headers), 422, "validation_error")
    _is_error(client.get("/v1/nowhere"), 404, "not_found")
    _is_error(client.put("/v1/schemas"), 405, "method_not_allowed")


def test_request_id_is_echoed_or_made(
    client: httpx.Client, tenant_a: TenantKey, audit_rows: Callable[..., Any]
) -> None:
    rid = f"req-{uuid.uuid4().hex}"
    response = client.post(
        "/v1/documents", files={"file": ("a.txt", rid.encode())}, headers={**tenant_a.headers, "X-Request-ID": rid}
    )
    assert response.headers["x-request-id"] == rid
    assert [e["action"] for e in audit_rows(request_id=rid)] == ["document.upload"]
    made = client.get("/healthz", headers={"X-Request-ID": "bad id; DROP"}).headers["x-request-id"]
    assert made != "bad id; DROP" and len(made) == 32


def test_same_document_schema_and_model_is_the_same_job(
    client: httpx.Client, tenant_a: TenantKey, audit_rows: Callable[..., Any]
) -> None:
    document = upload(client, tenant_a, f"Dedup {uuid.uuid4().hex} test.\n".encode())
    body = {"document_id": document["id"], "schema_name": "nda"}
    first = client.post("/v1/extractions", json=body, headers=tenant_a.headers)
    second = client.post("/v1/extractions", json={**body, "schema_version": 1}, headers=tenant_a.headers)
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert first.headers["location"] == f"/v1/extractions/{first.json()['id']}"
    job = extract_and_wait(client, tenant_a, document["id"])
    assert job["status"] == "succeeded" and job["attempts"] == 1
    actions = [e["action"] for e in audit_rows(target_id=job["id"])]
    assert actions.count("extraction.submit") == 3  # two posts here, one in extract_and_wait
    assert actions.count("job.running") == actions.count("job.succeeded") == 1  # the work ran once
    assert "extraction.read" in actions


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"schema_name": "no_such_schema"}, 422, "unknown_schema"),
        ({"schema_name": "nda", "schema_version": 99}, 422, "unknown_schema"),
        ({"schema_name": "nda", "webhook_url": "https://example.invalid/hook"}, 422, "webhook_url_refused"),
    ],
    ids=["unknown-name", "unknown-version", "webhook"],
)
def test_refused_submissions_are_audited(
    client: httpx.Client,
    tenant_a: TenantKey,
    audit_rows: Callable[..., Any],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    document = upload(client, tenant_a, f"Refused {uuid.uuid4().hex}.\n".encode())
    response = client.post("/v1/extractions", json={"document_id": document["id"], **body}, headers=tenant_a.headers)
    _is_error(response, status, code)
    events = audit_rows(request_id=response.headers["x-request-id"])
    assert [(e["action"], e["outcome"], e["details"]["error_code"]) for e in events] == [
        ("extraction.submit", "failure", code)
    ]


def test_user_schemas_register_version_and_extract(client: httpx.Client, tenant_a: TenantKey) -> None:
    schema = {"type": "object", "properties": {"vendor": {"type": ["string", "null"]}}}
    first = client.post("/v1/schemas", json={"name": "invoice", "json_schema": schema}, headers=tenant_a.headers)
    again = client.post("/v1/schemas", json={"name": "invoice", "json_schema": schema}, headers=tenant_a.headers)
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["version"] == 1
    changed = {**schema, "required": ["vendor"]}
    second = client.post("/v1/schemas", json={"name": "invoice", "json_schema": changed}, headers=tenant_a.headers)
    assert second.status_code == 201 and second.json()["version"] == 2
    assert client.get("/v1/schemas/invoice?version=1", headers=tenant_a.headers).json()["json_schema"] == schema
    document = upload(client, tenant_a, f"Globex {uuid.uuid4().hex} invoice.\n".encode())
    job = extract_and_wait(client, tenant_a, document["id"], schema="invoice")
    assert job["status"] == "succeeded", job
    assert job["schema_version"] == 2 and job["result"]["data"] == {"vendor": "Globex"}


@pytest.mark.parametrize(
    ("name", "schema", "status", "code", "reason"),
    [
        ("bad", {"type": "nonsense"}, 422, "invalid_schema", "not a valid JSON Schema"),
        ("flat", {"type": "string"}, 422, "invalid_schema", "root"),
        (
            "negation",
            {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
            422,
            "unsupported_schema",
            "llguidance",
        ),
        ("nda", {"type": "object", "properties": {}}, 409, "reserved_schema_name", "built-in"),
    ],
    ids=["invalid", "not-object", "backend-cannot-compile", "builtin-name"],
)
def test_schema_registration_refusals_say_why(
    client: httpx.Client, tenant_a: TenantKey, name: str, schema: dict[str, Any], status: int, code: str, reason: str
) -> None:
    response = client.post("/v1/schemas", json={"name": name, "json_schema": schema}, headers=tenant_a.headers)
    _is_error(response, status, code)
    error = response.json()["error"]
    assert reason in error["message"] or reason in error["details"].values()  # our words: no quote of the schema


def test_probes_and_metrics(client: httpx.Client, tenant_b: TenantKey) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok", "worker": "ok"}}
    document = upload(client, tenant_b, f"Metrics {uuid.uuid4().hex}.\n".encode())
    extract_and_wait(client, tenant_b, document["id"])
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'abstractor_http_requests_total{method="POST",route="/v1/documents",status="201"}' in text
    assert 'abstractor_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}' in text
    assert 'abstractor_jobs{status="succeeded"}' in text
    assert 'abstractor_job_duration_seconds_count{status="succeeded"}' in text
    assert tenant_b.tenant_id not in text and document["id"] not in text  # no ids as labels


def test_readiness_reports_a_broker_that_is_down(api_pg_url: str, tmp_path: Any) -> None:
    from service.api import create_app
    from tests.service.api.conftest import api_settings_for
    from tests.support.servers import ThreadedServer, free_port

    settings = api_settings_for(api_pg_url, tmp_path, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    with ThreadedServer(create_app(settings)) as server:
        ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not_ready", "checks": {"database": "ok", "broker": "error"}}


def test_two_tenants_can_hold_the_same_bytes(client: httpx.Client, tenant_a: TenantKey, tenant_b: TenantKey) -> None:
    content = f"Shared {uuid.uuid4().hex}.\n".encode()
    a, b = upload(client, tenant_a, content), upload(client, tenant_b, content)
    assert a["sha256"] == b["sha256"] and a["id"] != b["id"]


def test_a_second_tenant_made_through_admin_is_isolated(client: httpx.Client) -> None:
    one, two = make_tenant(client, ADMIN_TOKEN), make_tenant(client, ADMIN_TOKEN)
    assert one.tenant_id != two.tenant_id
