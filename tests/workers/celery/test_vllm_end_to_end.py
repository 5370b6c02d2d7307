"""The production path end to end, for real: API (Postgres) → relay (Redis) → `abstractor worker` → `vllm serve`.

Twenty short ACI-Bench notes are uploaded and submitted over HTTP to the `abstractor api` app (the relay
runs beside it), published to Redis, and run by a real `abstractor worker` process (ENGINE=openai,
the threads pool: many jobs in flight over one engine) against the session's real vLLM server (the
CPU build of the pinned release). Every job must succeed exactly once, and every evidence span must be
the canonical text at its offsets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.vllm_cpu import VllmServer
from service.processes.production import build_api_app
from service.store.models import AuditEvent, Job, JobStatus, Result
from tests.support.api import make_tenant, upload
from tests.support.servers import ThreadedServer
from tests.support.vllm import assert_grounded
from tests.workers.celery.harness import REPO, queue_settings, settings_env, statuses, wait_until
from workers.documents import read_document
from workers.engines.vllm_release import SERVED_MODEL_NAME

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

DOCUMENTS = 20
REDIS_URL = "redis://127.0.0.1:6379/6"
"""A Redis database of this module's own: the fault tests flush and restart theirs."""
ADMIN_TOKEN = "vllm-e2e-admin-token-7c1f0e9a2b"


@pytest.fixture
def own_broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_twenty_notes_through_api_relay_worker_and_vllm(
    vllm_server: VllmServer,
    queue_db: str,
    factory: sessionmaker[Session],
    own_broker: redis.Redis,
    shared_data: Path,
    tmp_path: Path,
) -> None:
    from evaluation import load_aci

    notes = sorted(load_aci(shared_data / "aci-bench"), key=lambda item: len(item[1]))[:DOCUMENTS]
    # A CPU vLLM is slow: the queue's short test limits would cut real runs, and the reconciler would
    # republish every job still waiting behind the eight in flight (each a delivery the worker skips).
    settings = queue_settings(
        queue_db,
        tmp_path / "data",
        broker_url=REDIS_URL,
        admin_token=ADMIN_TOKEN,
        task_soft_time_limit_s=1800.0,
        task_time_limit_s=1860.0,
        broker_visibility_timeout_s=2400.0,
        queued_timeout_s=2400.0,
    )
    env = {
        **os.environ,
        **settings_env(settings),
        "ABSTRACTOR_ENGINE": "openai",
        "ABSTRACTOR_OPENAI_BASE_URL": vllm_server.base_url,
        "ABSTRACTOR_OPENAI_MODEL": SERVED_MODEL_NAME,
        "ABSTRACTOR_WORKER_CONCURRENCY": "8",
        "ABSTRACTOR_ENGINE_CONCURRENCY": "8",
        "ABSTRACTOR_REQUEST_TIMEOUT_S": "900",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app = build_api_app(settings.model_copy(update={"engine": "openai", "openai_model": SERVED_MODEL_NAME}), factory)
    try:
        with ThreadedServer(app) as server, httpx.Client(base_url=server.base_url, timeout=60.0) as client:
            tenant = make_tenant(client, ADMIN_TOKEN)
            started = time.monotonic()
            job_ids: list[uuid.UUID] = []
            contents: dict[str, bytes] = {}
            for encounter, text, _gold in notes:
                content = text.encode("utf-8")
                document = upload(client, tenant, content, f"{encounter}.txt")
                submitted = client.post(
                    "/v1/extractions",
                    json={"document_id": document["id"], "schema_name": "clinical_note"},
                    headers=tenant.headers,
                )
                assert submitted.status_code == 202, submitted.text
                job_ids.append(uuid.UUID(submitted.json()["id"]))
                contents[submitted.json()["id"]] = content
            assert len(set(job_ids)) == DOCUMENTS
            wait_until(
                lambda: (
                    sum(statuses(factory, job_ids).get(s, 0) for s in (JobStatus.SUCCEEDED, JobStatus.FAILED))
                    == DOCUMENTS
                    or worker.poll() is not None
                ),
                3600,
                "all jobs settled",
                step=1.0,
            )
            wall_s = time.monotonic() - started
            assert worker.poll() is None, log_path.read_text()[-3000:]
            assert statuses(factory, job_ids) == {JobStatus.SUCCEEDED: DOCUMENTS}, log_path.read_text()[-3000:]
            records = [client.get(f"/v1/extractions/{j}", headers=tenant.headers).json() for j in job_ids]
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    with factory() as session:
        results = dict(
            session.execute(
                select(Result.job_id, func.count()).where(Result.job_id.in_(job_ids)).group_by(Result.job_id)
            ).all()
        )
        succeeded = dict(
            session.execute(
                select(AuditEvent.target_id, func.count())
                .where(AuditEvent.action == "job.succeeded", AuditEvent.target_id.in_([str(j) for j in job_ids]))
                .group_by(AuditEvent.target_id)
            ).all()
        )
        attempts = list(session.scalars(select(Job.attempts).where(Job.id.in_(job_ids))))
    assert all(results.get(j) == 1 for j in job_ids)  # none lost, none duplicated
    assert all(succeeded.get(str(j)) == 1 for j in job_ids)
    tokens = 0
    for job in records:
        assert job["status"] == "succeeded" and job["result"]["model"]["engine"] == "openai"
        doc = read_document(contents[job["id"]], media_type="text/plain")
        pages = {p.number: (p.start, p.end) for p in doc.pages}
        assert_grounded({"evidence": job["result"]["evidence"]}, doc.text, pages)
        tokens += job["timings"]["completion_tokens"]
    print(
        f"{DOCUMENTS} notes API→relay→worker→vllm: {wall_s:.0f} s, {tokens} generated tokens, attempts {sum(attempts)}"
    )
