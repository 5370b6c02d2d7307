"""A thin HTTP client for our API in tests: admin set-up, tenants with keys, polling jobs."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class TenantKey:
    """A tenant made through the admin API and one of its keys."""

    tenant_id: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for this tenant."""
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant(client: httpx.Client, admin_token: str, name: str | None = None) -> TenantKey:
    """Create a tenant and a key through the admin endpoints, as an operator would."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    tenant = client.post("/v1/admin/tenants", json={"name": name or f"t-{uuid.uuid4().hex[:8]}"}, headers=admin)
    assert tenant.status_code == 201, tenant.text
    tenant_id = tenant.json()["id"]
    key = client.post(f"/v1/admin/tenants/{tenant_id}/keys", json={"name": "tests"}, headers=admin)
    assert key.status_code == 201, key.text
    return TenantKey(tenant_id=tenant_id, key=key.json()["key"], key_id=key.json()["id"])


def upload(client: httpx.Client, tenant: TenantKey, content: bytes, filename: str = "note.txt") -> dict[str, Any]:
    """Upload bytes as the `file` part; returns the document."""
    response = client.post("/v1/documents", files={"file": (filename, content)}, headers=tenant.headers)
    assert response.status_code in (200, 201), response.text
    document: dict[str, Any] = response.json()
    return document


def extract_and_wait(
    client: httpx.Client, tenant: TenantKey, document_id: str, schema: str = "nda", timeout: float = 30.0
) -> dict[str, Any]:
    """Submit an extraction and poll until it is succeeded or failed."""
    response = client.post(
        "/v1/extractions", json={"document_id": document_id, "schema_name": schema}, headers=tenant.headers
    )
    assert response.status_code in (200, 202), response.text
    return wait_for_job(client, tenant, response.json()["id"], timeout)


def wait_for_job(client: httpx.Client, tenant: TenantKey, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GET /v1/extractions/{id} until the job settles."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/extractions/{job_id}", headers=tenant.headers).json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
