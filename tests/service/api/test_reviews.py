"""Reviews over real HTTP and Postgres: decisions are appended and audited, the model's record never changes."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.store.session import make_engine
from tests.support.api import TenantKey, extract_and_wait, upload

NOTE = "Agreement between Acme Widgets and Globex Corporation, governed by the laws of Delaware. Ref {tag}.\n"


@pytest.fixture
def job(client: httpx.Client, tenant_a: TenantKey) -> dict[str, Any]:
    document = upload(client, tenant_a, NOTE.format(tag=uuid.uuid4().hex).encode())
    done = extract_and_wait(client, tenant_a, document["id"])
    assert done["status"] == "succeeded", done
    return done


def _decide(client: httpx.Client, tenant: TenantKey, job_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/v1/reviews/{job_id}", json=body, headers=tenant.headers)


def test_a_review_from_queue_to_finish(
    client: httpx.Client, tenant_a: TenantKey, job: dict[str, Any], audit_rows: Callable[..., list[dict[str, Any]]]
) -> None:
    queue = client.get("/v1/reviews", headers=tenant_a.headers)
    assert queue.status_code == 200
    assert [(i["job_id"], i["state"]) for i in queue.json()["items"]] == [(job["id"], "unreviewed")]
    assert client.get("/v1/reviews?schema_name=contract", headers=tenant_a.headers).json()["items"] == []

    review = client.get(f"/v1/reviews/{job['id']}", headers=tenant_a.headers).json()
    assert review["state"] == "unreviewed"
    assert {f["name"] for f in review["fields"]} == {"parties", "effective_date", "jurisdiction", "term"}
    original = review["model"]

    found = _decide(client, tenant_a, job["id"], action="correct", field="jurisdiction", value="Delaware")
    assert found.status_code == 201, found.text
    assert found.json()["state"] == "in_review"
    current = found.json()["current"]
    assert current["data"]["jurisdiction"] == "Delaware"
    [evidence] = current["evidence"]["jurisdiction"]
    assert evidence["text"] == "Delaware" and evidence["match"] == "exact"
    assert not [f for f in current["flags"] if f["path"] == "jurisdiction"]

    invented = _decide(client, tenant_a, job["id"], action="correct", field="term", value="7 years")
    assert invented.status_code == 201
    flags = invented.json()["current"]["flags"]
    assert {"path": "term", "code": "correction_not_found_in_source"} in [
        {"path": f["path"], "code": f["code"]} for f in flags
    ]
    assert invented.json()["current"]["data"]["term"] == "7 years"

    bad = _decide(client, tenant_a, job["id"], action="correct", field="effective_date", value="someday")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_correction"
    unknown = _decide(client, tenant_a, job["id"], action="accept", field="nope")
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_field"
    valueless = _decide(client, tenant_a, job["id"], action="correct", field="term")
    assert valueless.status_code == 422 and valueless.json()["error"]["code"] == "invalid_decision"

    assert _decide(client, tenant_a, job["id"], action="reject", field="parties").status_code == 201
    assert _decide(client, tenant_a, job["id"], action="accept", field="effective_date").status_code == 201
    finished = _decide(client, tenant_a, job["id"], action="finish")
    assert finished.status_code == 201 and finished.json()["state"] == "reviewed"
    assert client.get("/v1/reviews", headers=tenant_a.headers).json()["items"] == []

    read = client.get(f"/v1/extractions/{job['id']}", headers=tenant_a.headers).json()
    assert read["review_state"] == "reviewed"
    assert read["result"]["data"] == {
        **original["data"],
        "jurisdiction": "Delaware",
        "term": "7 years",
        "parties": [],
    }
    assert read["model_result"] == original  # the model's record is untouched
    decisions = client.get(f"/v1/reviews/{job['id']}", headers=tenant_a.headers).json()["decisions"]
    assert [(d["action"], d["field"]) for d in decisions] == [
        ("correct", "jurisdiction"),
        ("correct", "term"),
        ("reject", "parties"),
        ("accept", "effective_date"),
        ("finish", None),
    ]
    assert {(d["reviewer"]["key_id"], d["reviewer"]["name"]) for d in decisions} == {(tenant_a.key_id, "tests")}

    events = [e for e in audit_rows(target_id=job["id"]) if e["action"].startswith("review.")]
    assert [(e["action"], e["outcome"]) for e in events if e["action"] != "review.read"] == [
        ("review.correct", "success"),
        ("review.correct", "success"),
        ("review.correct", "failure"),
        ("review.accept", "failure"),
        ("review.correct", "failure"),
        ("review.reject", "success"),
        ("review.accept", "success"),
        ("review.finish", "success"),
    ]
    assert all(e["actor"] == f"api_key:{tenant_a.key_id}" for e in events)


def test_decisions_are_append_only(
    api_pg_url: str, client: httpx.Client, tenant_a: TenantKey, job: dict[str, Any]
) -> None:
    assert _decide(client, tenant_a, job["id"], action="accept", field="term").status_code == 201
    engine = make_engine(api_pg_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(
                text("UPDATE review_decisions SET action = 'reject' WHERE job_id = :j"), {"j": job["id"]}
            )
    finally:
        engine.dispose()


def test_a_queued_or_foreign_job_cannot_be_reviewed(
    client: httpx.Client, tenant_a: TenantKey, tenant_b: TenantKey, job: dict[str, Any]
) -> None:
    foreign = _decide(client, tenant_b, job["id"], action="accept", field="term")
    missing = _decide(client, tenant_b, str(uuid.uuid4()), action="accept", field="term")
    assert foreign.status_code == missing.status_code == 404 and foreign.json() == missing.json()
    assert client.get(f"/v1/reviews?batch_id={uuid.uuid4()}", headers=tenant_a.headers).status_code == 404
    assert client.get("/v1/reviews", headers=tenant_b.headers).json()["items"] == []


def test_batch_exports_carry_the_reviewed_values_and_who_reviewed(client: httpx.Client, tenant_a: TenantKey) -> None:
    document = upload(client, tenant_a, NOTE.format(tag=uuid.uuid4().hex).encode())
    batch = client.post(
        "/v1/batches", json={"document_ids": [document["id"]], "schema_name": "nda"}, headers=tenant_a.headers
    ).json()
    job = extract_and_wait(client, tenant_a, document["id"])  # the batch's job: same document, schema and model
    queue = client.get(f"/v1/reviews?batch_id={batch['id']}", headers=tenant_a.headers).json()["items"]
    assert [i["job_id"] for i in queue] == [job["id"]]
    assert (
        _decide(client, tenant_a, job["id"], action="correct", field="jurisdiction", value="Delaware").status_code
        == 201
    )
    rows = [
        json.loads(line)
        for line in client.get(f"/v1/batches/{batch['id']}/results", headers=tenant_a.headers).text.splitlines()
    ]
    [row] = rows
    assert row["review_state"] == "in_review" and row["reviewed_data"]["jurisdiction"] == "Delaware"
    assert row["data"]["jurisdiction"] != "Delaware"  # the model's own value stays beside it
    assert row["reviewers"] == [{"key_id": tenant_a.key_id, "name": "tests"}]
    table = list(
        csv.DictReader(
            io.StringIO(client.get(f"/v1/batches/{batch['id']}/results?format=csv", headers=tenant_a.headers).text)
        )
    )
    assert table[0]["reviewed.jurisdiction"] == "Delaware" and table[0]["reviewers"] == "tests"
    assert table[0]["review_state"] == "in_review"
