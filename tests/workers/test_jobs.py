"""`run_job` (workers.jobs) on a real (SQLite) store: success, bad input, transient retries, bugs, redelivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.requeue import MAX_ATTEMPTS
from service.store import repositories as repo
from service.store.models import AuditEvent, Job, JobStatus, OutboxMessage
from service.store.session import make_engine, make_session_factory, run_migrations
from tests.support.engines import DeterministicEngine
from workers.documents.model import LimitsSpec
from workers.engines.protocol import GenerationRequest, GenerationResult
from workers.errors import TransientError
from workers.jobs import run_job
from workers.pipeline.run import PipelineOptions

OPTIONS = PipelineOptions()
LIMITS = LimitsSpec()


@pytest.fixture
def factory(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    run_migrations(url)
    return make_session_factory(make_engine(url))


def _job(factory: sessionmaker[Session], content: bytes, media_type: str = "text/plain") -> uuid.UUID:
    with factory.begin() as session:
        tenant = repo.create_tenant(session, f"t-{uuid.uuid4().hex[:6]}")
        document, _ = repo.add_document(session, tenant.id, content, media_type=media_type)
        job, _ = repo.create_job(
            session, tenant.id, document.id, schema_name="nda", schema_version=1, model="m", backend="b"
        )
        return job.id


def _state(factory: sessionmaker[Session], job_id: uuid.UUID) -> tuple[Job, list[str]]:
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        actions = list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.target_id == str(job_id)).order_by(AuditEvent.seq)
            )
        )
        return job, actions


class _Raising(DeterministicEngine):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        raise self.error


def test_success_stores_result_status_and_audit_together(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory, b"Initech agreement, governed by Texas law.\n")
    run_job(factory, job_id, DeterministicEngine(), OPTIONS, LIMITS)
    job, actions = _state(factory, job_id)
    assert (job.status, job.attempts, job.error_code) == (JobStatus.SUCCEEDED, 1, None)
    assert actions == ["job.running", "job.succeeded"]
    with factory() as session:
        result = repo.get_result(session, job.tenant_id, job_id)
        assert result is not None and result.data["jurisdiction"] == "Initech"
        assert result.flags is not None and result.flags["model"]["engine"] == "deterministic"


def test_redelivery_does_nothing(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory, b"Hooli note.\n")
    run_job(factory, job_id, DeterministicEngine(), OPTIONS, LIMITS)
    run_job(factory, job_id, DeterministicEngine(), OPTIONS, LIMITS)
    run_job(factory, uuid.uuid4(), DeterministicEngine(), OPTIONS, LIMITS)  # unknown id: logged, skipped
    job, actions = _state(factory, job_id)
    assert job.attempts == 1 and actions == ["job.running", "job.succeeded"]


def test_bad_input_fails_for_good_and_the_engine_is_never_built(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory, b"%PDF-1.7\nthis is no pdf at all\n", media_type="application/pdf")
    built: list[bool] = []

    def engine_factory() -> DeterministicEngine:
        built.append(True)
        return DeterministicEngine()

    run_job(factory, job_id, engine_factory, OPTIONS, LIMITS)
    job, actions = _state(factory, job_id)
    assert job.status is JobStatus.FAILED and job.error_code == "invalid_pdf"
    assert actions == ["job.running", "job.failed"] and built == []


def test_transient_faults_requeue_until_the_attempts_run_out(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory, b"Umbrella memo.\n")
    engine = _Raising(TransientError("engine server away", code="engine_unavailable"))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run_job(factory, job_id, engine, OPTIONS, LIMITS)
        job, _ = _state(factory, job_id)
        assert job.attempts == attempt
    job, actions = _state(factory, job_id)
    assert job.status is JobStatus.FAILED and job.error_code == "engine_unavailable"
    assert actions.count("job.requeued") == MAX_ATTEMPTS - 1 and actions[-1] == "job.failed"
    with factory() as session:
        requeues = session.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job_id)).all()
        assert len(requeues) == MAX_ATTEMPTS - 1  # one new message per retry (the first came with the job)


def test_a_bug_fails_the_job_without_keeping_its_message(factory: sessionmaker[Session]) -> None:
    job_id = _job(factory, b"Soylent memo.\n")
    run_job(factory, job_id, _Raising(RuntimeError("quoting the document: Soylent")), OPTIONS, LIMITS)
    job, actions = _state(factory, job_id)
    assert job.status is JobStatus.FAILED and job.error_code == "internal_error"
    assert job.error_message == "unexpected RuntimeError"
    assert actions == ["job.running", "job.failed"]
