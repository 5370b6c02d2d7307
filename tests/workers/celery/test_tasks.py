"""The extraction task in a real Celery worker (child process) on the real Redis and Postgres.

The worker runs the `abstractor worker` code path (`service.processes.production.run_worker`) with the
deterministic test engine; the relay runs as a thread in the test process.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.jobs.relay import Relay
from service.jobs.requeue import MAX_ATTEMPTS
from service.store import repositories as repo
from service.store.models import AuditEvent, JobStatus
from tests.workers.celery.harness import WorkerProcess, actions, add_jobs, job, result_count, wait_until
from workers.celery_app import EXTRACT_TASK, QUEUE
from workers.jobs import TIME_LIMIT_CODE

SETTLED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@pytest.fixture(scope="module")
def worker(
    settings: Settings, broker: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One real worker for the module (concurrency 1)."""
    process = WorkerProcess(settings, tmp_path_factory.mktemp("worker") / "worker.log", delay_s=0.05).start()
    yield process
    process.stop()
    print(process.log_text()[-4000:])  # shown by pytest when a test of the module failed


def _settle(factory: sessionmaker[Session], job_id: uuid.UUID, timeout: float = 60.0) -> None:
    wait_until(lambda: job(factory, job_id).status in SETTLED, timeout, f"job {job_id} to settle")


def _occurred(factory: sessionmaker[Session], job_id: uuid.UUID) -> list[tuple[str, dt.datetime]]:
    with factory() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.occurred_at)
            .where(AuditEvent.target_id == str(job_id))
            .order_by(AuditEvent.seq)
        ).all()
    return [(a, t) for a, t in rows]


def test_a_job_runs_once_and_a_second_delivery_changes_nothing(
    worker: WorkerProcess, relay: Relay, factory: sessionmaker[Session]
) -> None:
    _, (job_id,) = add_jobs(factory, [b"Initech mutual agreement.\n"])
    _settle(factory, job_id)
    assert job(factory, job_id).status is JobStatus.SUCCEEDED

    relay.publisher.publish(job_id, 0)  # the same job delivered again, as a broker redelivery would
    wait_until(lambda: any(r.get("job_id") == str(job_id) for r in worker.records("job skipped")), 30, "the redelivery")
    done = job(factory, job_id)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert actions(factory, job_id) == ["job.running", "job.succeeded"]
    assert result_count(factory, job_id) == 1


def test_a_malformed_message_is_dropped_without_touching_the_job(
    worker: WorkerProcess, relay: Relay, factory: sessionmaker[Session]
) -> None:
    with factory.begin() as session:  # a queued job with no outbox row: only our bad messages name it
        tenant = repo.create_tenant(session, f"malformed-{uuid.uuid4().hex[:6]}")
        document, _ = repo.add_document(session, tenant.id, b"Umbrella memo.\n", media_type="text/plain")
        row, _ = repo.create_job(session, tenant.id, document.id, schema_name="nda", schema_version=1, model="m",
                                 backend="b")  # fmt: skip
        job_id = row.id
    before = len(worker.records("invalid task message dropped"))
    app = relay.publisher.app  # type: ignore[attr-defined]
    app.send_task(EXTRACT_TASK, args=[{"v": 2, "job_id": str(job_id)}], queue=QUEUE)
    app.send_task(EXTRACT_TASK, args=[{"v": 1, "job_id": str(job_id), "text": "Umbrella memo."}], queue=QUEUE)
    wait_until(lambda: len(worker.records("invalid task message dropped")) == before + 2, 30, "two drops")
    untouched = job(factory, job_id)
    assert (untouched.status, untouched.attempts) == (JobStatus.QUEUED, 0)
    drops = worker.records("invalid task message dropped")[before:]
    assert sorted(r["errors"] for r in drops) == [["extra_forbidden"], ["literal_error"]]  # the kinds only
    assert not any("Umbrella" in json.dumps(r) for r in drops)


def test_a_transient_fault_is_retried_after_a_backoff(
    worker: WorkerProcess, relay: Relay, factory: sessionmaker[Session], settings: Settings
) -> None:
    _, (job_id,) = add_jobs(factory, [b"TRANSIENT-ONCE Hooli agreement.\n"])
    _settle(factory, job_id)
    done = job(factory, job_id)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    trail = _occurred(factory, job_id)
    assert [a for a, _ in trail] == ["job.running", "job.requeued", "job.running", "job.succeeded"]
    waited = (trail[2][1] - trail[1][1]).total_seconds()
    assert waited >= settings.retry_backoff_s
    assert result_count(factory, job_id) == 1


def test_the_soft_time_limit_fails_the_job_with_its_reason(
    worker: WorkerProcess, relay: Relay, factory: sessionmaker[Session]
) -> None:
    _, (job_id,) = add_jobs(factory, [b"SLOW-DOC Soylent agreement.\n"])
    _settle(factory, job_id)
    failed = job(factory, job_id)
    assert (failed.status, failed.error_code, failed.attempts) == (JobStatus.FAILED, TIME_LIMIT_CODE, 1)
    assert actions(factory, job_id) == ["job.running", "job.failed"]


@pytest.mark.slow
def test_a_document_that_kills_its_worker_fails_after_three_attempts(
    worker: WorkerProcess, relay: Relay, factory: sessionmaker[Session]
) -> None:
    _, (job_id,) = add_jobs(factory, [b"KILL-MY-WORKER Vandelay agreement.\n"])
    _settle(factory, job_id, timeout=90)
    failed = job(factory, job_id)
    assert (failed.status, failed.error_code, failed.attempts) == (JobStatus.FAILED, "worker_lost", MAX_ATTEMPTS)
    assert actions(factory, job_id) == [
        "job.running", "job.requeued", "job.running", "job.requeued", "job.running", "job.failed",
    ]  # fmt: skip
    assert result_count(factory, job_id) == 0
    # The Celery parent survived its pool processes' deaths and still runs jobs.
    _, (after,) = add_jobs(factory, [b"Kramerica agreement.\n"])
    _settle(factory, after)
    assert job(factory, after).status is JobStatus.SUCCEEDED
