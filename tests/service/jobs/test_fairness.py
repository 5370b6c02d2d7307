"""Fair claims: one tenant's backlog never holds another tenant's job back (both store backends).

A worker takes the next message with `claim_outbox` and starts its job; here the worker's loop is run by
hand (claim one, start, mark sent), so the order jobs start in is exactly what the claims decide.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from service.jobs.identity import ModelRef
from service.jobs.resolve import ResolvedSchema
from service.jobs.submit import submit_job
from service.store import repositories as repo
from service.store.models import Document, JobStatus, Tenant

NDA = ResolvedSchema("nda", 1)
MODEL = ModelRef("m", "b")


def _backlog(session: Session, tenant: Tenant, jobs: int) -> list[uuid.UUID]:
    out = []
    for n in range(jobs):
        document, _ = repo.add_document(session, tenant.id, f"{tenant.id} {n}\n".encode(), media_type="text/plain")
        job, _ = submit_job(session, tenant.id, document.id, NDA, MODEL)
        out.append(job.id)
    return out


def _start_next(session: Session, batch: int = 1) -> list[uuid.UUID]:
    """What a worker does: claim, start each job, mark its message sent."""
    claimed = repo.claim_outbox(session, limit=batch)
    for message in claimed:
        assert repo.transition(session, message.job_id, [JobStatus.QUEUED], JobStatus.RUNNING)
    repo.mark_outbox_sent(session, [m.id for m in claimed])
    return [m.job_id for m in claimed]


def test_a_tenant_with_20_queued_jobs_does_not_hold_back_another_tenants_job(
    session: Session, tenant: Tenant, document: Document
) -> None:
    a = tenant
    b = repo.create_tenant(session, f"b-{uuid.uuid4()}")
    a_jobs = _backlog(session, a, 20)
    [b_job] = _backlog(session, b, 1)  # submitted after all of A's
    started: list[uuid.UUID] = []
    while batch := _start_next(session):
        started.extend(batch)
    assert sorted(map(str, started)) == sorted(map(str, [*a_jobs, b_job]))  # each started once
    assert started.index(b_job) < started.index(a_jobs[2])  # before A's third
    assert [j for j in started if j != b_job] == a_jobs  # A's own order kept


def test_a_relay_batch_takes_tenants_in_turns(session: Session, tenant: Tenant, document: Document) -> None:
    a = tenant
    b = repo.create_tenant(session, f"b-{uuid.uuid4()}")
    c = repo.create_tenant(session, f"c-{uuid.uuid4()}")
    a_jobs, b_jobs, c_jobs = _backlog(session, a, 5), _backlog(session, b, 2), _backlog(session, c, 1)
    # One claim of a whole batch comes back in publishing order: every tenant's first, then every second, ...
    order = _start_next(session, batch=100)
    assert order == [a_jobs[0], b_jobs[0], c_jobs[0], a_jobs[1], b_jobs[1], *a_jobs[2:]]
