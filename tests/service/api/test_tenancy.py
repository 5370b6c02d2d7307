"""Two tenants: every `{id}` route answers another tenant's ids exactly as unknown ids, and audits it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.service.api.conftest import ADMIN_TOKEN
from tests.support.api import TenantKey, extract_and_wait, upload

USER_SCHEMA = {
    "type": "object",
    "properties": {"vendor": {"type": ["string", "null"], "maxLength": 100}},
    "additionalProperties": False,
}


@pytest.fixture
def owned(client: httpx.Client, tenant_a: TenantKey) -> dict[str, str]:
    """Ids that belong to tenant A: a document, a finished job, a registered schema, a key."""
    document = upload(client, tenant_a, f"Invoice {uuid.uuid4().hex} from Acme.\n".encode())
    job = extract_and_wait(client, tenant_a, document["id"])
    assert job["status"] == "succeeded", job
    name = f"inv{uuid.uuid4().hex[:8]}"
    schema = client.post("/v1/schemas", json={"name": name, "json_schema": USER_SCHEMA}, headers=tenant_a.headers)
    assert schema.status_code == 201, schema.text
    return {"document": document["id"], "job": job["id"], "schema": name, "key": tenant_a.key_id}


def _calls(ids: dict[str, str], tenant: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    """Every route that takes an id, aimed at `ids` (method, path, json body)."""
    return {
        "GET /v1/documents/{id}": ("GET", f"/v1/documents/{ids['document']}", None),
        "GET /v1/documents/{id}/pages/{n}": ("GET", f"/v1/documents/{ids['document']}/pages/1", None),
        "GET /v1/extractions/{id}": ("GET", f"/v1/extractions/{ids['job']}", None),
        "GET /v1/reviews/{id}": ("GET", f"/v1/reviews/{ids['job']}", None),
        "POST /v1/reviews/{id}": ("POST", f"/v1/reviews/{ids['job']}", {"action": "accept", "field": "term"}),
        "GET /v1/schemas/{name}": ("GET", f"/v1/schemas/{ids['schema']}", None),
        "POST /v1/extractions (document_id)": (
            "POST",
            "/v1/extractions",
            {"document_id": ids["document"], "schema_name": "nda"},
        ),
        "DELETE /v1/admin/tenants/{tenant}/keys/{id}": (
            "DELETE",
            f"/v1/admin/tenants/{tenant}/keys/{ids['key']}",
            None,
        ),
    }


CALLS = list(_calls({"document": "", "job": "", "schema": "", "key": ""}, ""))


@pytest.mark.parametrize("route", CALLS, ids=CALLS)
def test_foreign_ids_answer_exactly_like_unknown_ids(
    route: str,
    client: httpx.Client,
    tenant_a: TenantKey,
    tenant_b: TenantKey,
    owned: dict[str, str],
    audit_rows: Callable[..., list[dict[str, Any]]],
) -> None:
    unknown = {
        "document": str(uuid.uuid4()),
        "job": str(uuid.uuid4()),
        "schema": f"nope{uuid.uuid4().hex[:8]}",
        "key": str(uuid.uuid4()),
    }
    admin = route.startswith("DELETE")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else tenant_b.headers
    # Admin routes are scoped by the tenant in the path: B's path with A's key id is the foreign case.
    method, path, body = _calls(owned, tenant_b.tenant_id)[route]
    foreign = client.request(method, path, json=body, headers=headers)
    method, path, body = _calls(unknown, tenant_b.tenant_id)[route]
    missing = client.request(method, path, json=body, headers=headers)

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert set(foreign.json()) == {"error"} and foreign.json()["error"]["code"] == "not_found"
    assert foreign.headers["content-type"] == missing.headers["content-type"]

    target = (
        owned["schema"]
        if "schemas" in route
        else owned["key"]
        if admin
        else owned["job" if "extractions/{id}" in route or "reviews" in route else "document"]
    )
    if "schemas" in route:
        return  # schema reads are not audited reads of documents or results; covered by the 404 above
    events = audit_rows(target_id=target, tenant_id=uuid.UUID(tenant_b.tenant_id))
    assert [e["outcome"] for e in events] == ["denied"], events
    assert events[0]["request_id"] == foreign.headers["x-request-id"]


def test_the_owner_still_reads_its_own(
    client: httpx.Client, tenant_a: TenantKey, owned: dict[str, str], audit_rows: Callable[..., list[dict[str, Any]]]
) -> None:
    assert client.get(f"/v1/documents/{owned['document']}", headers=tenant_a.headers).status_code == 200
    job = client.get(f"/v1/extractions/{owned['job']}", headers=tenant_a.headers)
    assert job.status_code == 200 and job.json()["result"] is not None
    reads = audit_rows(target_id=owned["job"], action="extraction.read", outcome="success")
    assert reads and all(str(r["tenant_id"]) == tenant_a.tenant_id for r in reads)


def test_listing_shows_only_own_schemas(client: httpx.Client, tenant_b: TenantKey, owned: dict[str, str]) -> None:
    names = {s["name"] for s in client.get("/v1/schemas", headers=tenant_b.headers).json()["schemas"]}
    assert owned["schema"] not in names and "nda" in names
