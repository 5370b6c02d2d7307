"""`/v1/batches` over real Postgres: submit uploaded documents, follow progress, export, resubmit."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from typing import Any

import httpx
import pyarrow.parquet as pq

from tests.support.api import TenantKey, upload


def _wait_done(client: httpx.Client, tenant: TenantKey, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}", headers=tenant.headers).json()
        if batch["done"] or time.monotonic() > deadline:
            return batch
        time.sleep(0.1)


def test_batch_round_trip(client: httpx.Client, tenant_a: TenantKey, tenant_b: TenantKey) -> None:
    tag = uuid.uuid4().hex[:8]
    docs = [
        upload(client, tenant_a, f"Acme{tag} agreement number {i}.\n".encode(), f"n{i}.txt")["id"] for i in range(3)
    ]
    bad = upload(client, tenant_a, b"%PDF-1.7\nbroken " + tag.encode(), "bad.pdf")["id"]
    body = {"document_ids": [*docs, docs[0], bad], "schema_name": "nda", "name": f"archive-{tag}"}
    response = client.post("/v1/batches", json=body, headers=tenant_a.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/batches/{created['id']}"
    assert (created["documents"], created["new_jobs"], created["name"]) == (4, 4, f"archive-{tag}")

    batch = _wait_done(client, tenant_a, created["id"])
    assert batch["done"] and batch["counts"]["succeeded"] == 3 and batch["counts"]["failed"] == 1

    jsonl = client.get(f"/v1/batches/{created['id']}/results", headers=tenant_a.headers)
    assert jsonl.status_code == 200 and jsonl.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert len(rows) == 4 and len({r["sha256"] for r in rows}) == 4
    assert [r["copies"] for r in rows] == [2, 1, 1, 1]
    by_status = {r["status"] for r in rows}
    assert by_status == {"succeeded", "failed"}
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error_code"] == "invalid_pdf" and failed["data"] is None
    assert all(r["data"]["jurisdiction"] == f"Acme{tag}" for r in rows if r["status"] == "succeeded")

    table = list(
        csv.DictReader(
            io.StringIO(client.get(f"/v1/batches/{created['id']}/results?format=csv", headers=tenant_a.headers).text)
        )
    )
    assert len(table) == 4 and "data.jurisdiction" in table[0]
    parquet = client.get(f"/v1/batches/{created['id']}/results?format=parquet", headers=tenant_a.headers)
    assert parquet.status_code == 200
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 4

    # Resubmitting (an interrupted client retrying) reuses every job: nothing runs twice.
    again = client.post("/v1/batches", json=body, headers=tenant_a.headers).json()
    assert again["new_jobs"] == 0 and again["done"] and again["id"] != created["id"]

    # Another tenant sees neither the batch nor its results; nor may it batch tenant A's documents.
    assert client.get(f"/v1/batches/{created['id']}", headers=tenant_b.headers).status_code == 404
    assert client.get(f"/v1/batches/{created['id']}/results", headers=tenant_b.headers).status_code == 404
    foreign = client.post("/v1/batches", json={"document_ids": docs, "schema_name": "nda"}, headers=tenant_b.headers)
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"


def test_batch_refusals(client: httpx.Client, tenant_a: TenantKey) -> None:
    doc = upload(client, tenant_a, f"Refusal {uuid.uuid4().hex}.\n".encode())["id"]
    cases = [
        ({"document_ids": [doc], "schema_name": "no_such_schema"}, "unknown_schema"),
        ({"document_ids": [], "schema_name": "nda"}, "validation_error"),
        ({"document_ids": [doc], "schema_name": "nda", "webhook_url": "http://127.0.0.1:9/x"}, "webhook_url_refused"),
        # A public address passes the guard, but this server has no signing secret: webhooks are off.
        ({"document_ids": [doc], "schema_name": "nda", "webhook_url": "http://93.184.216.34/x"}, "webhooks_disabled"),
    ]
    for body, code in cases:
        response = client.post("/v1/batches", json=body, headers=tenant_a.headers)
        assert response.status_code == 422 and response.json()["error"]["code"] == code, response.text
    unknown = client.get(f"/v1/batches/{uuid.uuid4()}/results?format=xml", headers=tenant_a.headers)
    assert unknown.status_code == 422
