"""A tenant's jobs in flight are capped (ABSTRACTOR_TENANT_MAX_IN_FLIGHT), in the claim itself (both backends).

In flight: running, under a live claim, or (through the relay) published to the broker and not yet
started, since Redis's queue cannot be reordered. Held-back messages stay unsent and are claimed once
one of the tenant's jobs finishes; other tenants are never held back by it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.jobs.identity import ModelRef
from service.jobs.recovery import republish_queued
from service.jobs.relay import Relay
from service.jobs.requeue import settle_failed_run
from service.jobs.resolve import ResolvedSchema
from service.jobs.submit import submit_job
from service.processes.embedded import EmbeddedWorker
from service.processes.production import make_relay
from service.store import repositories as repo
from service.store.models import JobStatus, Tenant, utcnow
from service.store.session import make_engine, make_session_factory
from tests.service.store.conftest import pg_commit_url  # noqa: F401 - the committed database's fixture

NDA = ResolvedSchema("nda", 1)
MODEL = ModelRef("m", "b")
LIMIT = 2


def _backlog(session: Session, tenant: Tenant, jobs: int) -> list[uuid.UUID]:
    out = []
    for n in range(jobs):
        document, _ = repo.add_document(session, tenant.id, f"{tenant.id} {n}\n".encode(), media_type="text/plain")
        job, _ = submit_job(session, tenant.id, document.id, NDA, MODEL)
        out.append(job.id)
    return out


def _claim(session: Session, *, limit: int | None = LIMIT, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """What the relay does: claim a batch and publish it (marked sent); returns the claimed jobs in order."""
    claimed = repo.claim_outbox(session, limit=100, max_in_flight=limit, now=now)
    repo.mark_outbox_sent(session, [m.id for m in claimed])
    return [m.job_id for m in claimed]


def _start(session: Session, job_id: uuid.UUID) -> None:
    assert repo.transition(session, job_id, [JobStatus.QUEUED], JobStatus.RUNNING)


def _finish(session: Session, job_id: uuid.UUID) -> None:
    assert repo.transition(session, job_id, [JobStatus.RUNNING], JobStatus.SUCCEEDED)


class FifoBroker:
    """Redis as the relay sees it: a queue taken from the front only."""

    def __init__(self) -> None:
        self.queue: list[uuid.UUID] = []

    def publish(self, job_id: uuid.UUID, message_id: int) -> None:
        self.queue.append(job_id)

    def broker_epoch(self) -> str | None:
        return "one-run"

    def close(self) -> None:
        pass


@pytest.fixture
def factory(session: Session) -> sessionmaker[Session]:
    """Sessions on the test's connection: the relay's commits are savepoints the test rolls back."""
    return sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")


def test_the_relay_keeps_a_tenant_at_its_limit_and_sends_the_rest_as_jobs_finish(
    session: Session, tenant: Tenant, factory: sessionmaker[Session]
) -> None:
    a, b = tenant, repo.create_tenant(session, f"b-{uuid.uuid4()}")
    a_jobs = _backlog(session, a, 10)
    [b_job] = _backlog(session, b, 1)
    broker = FifoBroker()
    relay = Relay(factory, broker, tenant_max_in_flight=LIMIT)
    assert relay.relay_once() == 3
    assert broker.queue == [a_jobs[0], b_job, a_jobs[1]]  # B's job is not held back by A's limit
    assert relay.relay_once() == 0  # A has 2 in the broker: nothing more of A's goes in

    started: list[uuid.UUID] = []
    while broker.queue:
        job_id = broker.queue.pop(0)  # a worker takes the front of the queue
        _start(session, job_id)
        started.append(job_id)
        assert relay.relay_once() == 0  # running still counts
        _finish(session, job_id)
        relay.relay_once()
        assert sum(j in a_jobs for j in broker.queue) <= LIMIT
    assert started == [a_jobs[0], b_job, *a_jobs[1:]]  # every job once, A's in its order
    with factory() as check:
        assert repo.jobs_with_unsent_outbox(check, [*a_jobs, b_job]) == set()


def test_a_tenant_at_its_limit_never_holds_back_another_tenants_new_job(session: Session, tenant: Tenant) -> None:
    a, b = tenant, repo.create_tenant(session, f"b-{uuid.uuid4()}")
    a_jobs = _backlog(session, a, 10)
    assert _claim(session) == a_jobs[:2]
    [b_job] = _backlog(session, b, 1)  # submitted after all of A's, while A is at its limit
    assert _claim(session) == [b_job]
    for job_id in a_jobs[:2]:
        _start(session, job_id)
    assert _claim(session) == []


def test_without_a_limit_every_waiting_message_is_claimed_in_turns(session: Session, tenant: Tenant) -> None:
    a, b = tenant, repo.create_tenant(session, f"b-{uuid.uuid4()}")
    a_jobs = _backlog(session, a, 10)
    [b_job] = _backlog(session, b, 1)
    assert _claim(session, limit=None) == [a_jobs[0], b_job, *a_jobs[1:]]
    assert Settings(_env_file=None).tenant_max_in_flight == 0  # type: ignore[call-arg]  # unset: no limit


def test_the_setting_reaches_the_relay(session: Session, tenant: Tenant, factory: sessionmaker[Session]) -> None:
    a_jobs = _backlog(session, tenant, 5)
    settings = Settings(_env_file=None, broker_url="redis://127.0.0.1:6379/5", tenant_max_in_flight=LIMIT)  # type: ignore[call-arg]
    relay = make_relay(settings, factory)
    broker = FifoBroker()
    relay.publisher.close()
    relay.publisher = broker
    assert relay.relay_once() == LIMIT
    assert broker.queue == a_jobs[:LIMIT]


def test_a_live_claim_counts_until_its_lease_lapses(session: Session, tenant: Tenant) -> None:
    a_jobs = _backlog(session, tenant, 5)
    now = utcnow()
    lease = dt.timedelta(seconds=30)
    first = repo.claim_outbox(session, limit=100, lease=lease, max_in_flight=LIMIT, now=now)
    assert [m.job_id for m in first] == a_jobs[:2]  # being published (not marked sent yet)
    assert repo.claim_outbox(session, limit=100, lease=lease, max_in_flight=LIMIT, now=now) == []
    # The relay died before publishing: once the lease lapses the same two rows are claimed again.
    again = repo.claim_outbox(session, limit=100, lease=lease, max_in_flight=LIMIT, now=now + 2 * lease)
    assert [m.id for m in again] == [m.id for m in first]


def test_a_requeued_job_frees_its_slot_during_its_backoff_and_is_claimed_later(
    session: Session, tenant: Tenant
) -> None:
    a_jobs = _backlog(session, tenant, 4)
    assert _claim(session) == a_jobs[:2]
    _start(session, a_jobs[0])
    settled = settle_failed_run(
        session,
        a_jobs[0],
        tenant.id,
        1,
        requeue=True,
        error_code="engine_unavailable",
        error_message="transient",
        actor="test",
        delay_s=60,
    )
    assert settled is JobStatus.QUEUED
    assert _claim(session) == [a_jobs[2]]  # waiting out its backoff, the job is not in flight
    later = utcnow() + dt.timedelta(seconds=61)
    assert _claim(session, now=later) == []  # A has 2 in the broker again; the due retry waits unsent
    _start(session, a_jobs[1])
    _finish(session, a_jobs[1])
    assert _claim(session, now=later) == [a_jobs[3]]  # the line is by message: the retry's row is newest
    _start(session, a_jobs[2])
    _finish(session, a_jobs[2])
    assert _claim(session, now=later) == [a_jobs[0]]  # not lost


def test_messages_the_broker_lost_are_published_again_despite_the_limit(session: Session, tenant: Tenant) -> None:
    a_jobs = _backlog(session, tenant, 3)
    assert _claim(session) == a_jobs[:2]
    # Redis restarted empty: the reconciler gives both published jobs a new row; they are no longer in flight.
    assert republish_queued(session, utcnow() + dt.timedelta(seconds=1), limit=100) == 2
    assert _claim(session) == [a_jobs[2], a_jobs[0]]
    _start(session, a_jobs[2])
    _finish(session, a_jobs[2])
    assert _claim(session) == [a_jobs[1]]
    assert repo.jobs_with_unsent_outbox(session, a_jobs) == set()


def test_the_embedded_worker_counts_running_jobs_only(session: Session, tenant: Tenant) -> None:
    """The embedded worker marks a row sent once done with it: a sent row of a queued job is not in flight."""
    a_jobs = _backlog(session, tenant, 3)
    [message] = repo.claim_outbox(session, limit=1, max_in_flight=1, broker=False)
    _start(session, message.job_id)
    assert repo.claim_outbox(session, limit=1, max_in_flight=1, broker=False) == []  # one running
    _finish(session, message.job_id)
    repo.mark_outbox_sent(session, [message.id])
    # A message given up (marked sent, its job left queued) never blocks the tenant.
    [given_up] = repo.claim_outbox(session, limit=1, max_in_flight=1, broker=False)
    repo.mark_outbox_sent(session, [given_up.id])
    [last] = repo.claim_outbox(session, limit=1, max_in_flight=1, broker=False)
    assert [message.job_id, given_up.job_id, last.job_id] == a_jobs


def test_the_setting_reaches_the_embedded_worker(
    session: Session, tenant: Tenant, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _backlog(session, tenant, 2)
    [message] = repo.claim_outbox(session, limit=1)
    _start(session, first)  # running elsewhere (another serve or batch on the same store)
    ran: list[uuid.UUID] = []
    monkeypatch.setattr(EmbeddedWorker, "_run", lambda _self, job_id: ran.append(job_id))
    worker = EmbeddedWorker(factory, Settings(_env_file=None, tenant_max_in_flight=1))  # type: ignore[call-arg]
    assert worker.run_once() is False  # the tenant has its one job in flight
    _finish(session, first)
    repo.mark_outbox_sent(session, [message.id])
    assert worker.run_once() is True
    assert ran == [second]


# --- two relays at once on Postgres (committed, on a separate database) ------------------------------


@pytest.fixture
def committed(pg_commit_url: str) -> Iterator[tuple[Engine, Tenant]]:  # noqa: F811
    engine = make_engine(pg_commit_url, pool_size=4)
    with make_session_factory(engine).begin() as session:
        tenant = repo.create_tenant(session, f"tenant-{uuid.uuid4()}")
    yield engine, tenant
    engine.dispose()


def test_a_second_relay_claiming_at_the_same_time_keeps_the_limit(committed: tuple[Engine, Tenant]) -> None:
    engine, tenant = committed
    factory = make_session_factory(engine)
    with factory.begin() as session:
        a_jobs = _backlog(session, tenant, 5)
    with factory() as first, factory() as second:
        a = [(m.id, m.job_id) for m in repo.claim_outbox(first, max_in_flight=LIMIT)]
        b = [(m.id, m.job_id) for m in repo.claim_outbox(second, max_in_flight=LIMIT)]  # `first` holds its locks
        assert [job_id for _, job_id in a] == a_jobs[:2] and b == []
        first.commit()
        second.commit()
    with factory.begin() as session:
        assert repo.claim_outbox(session, max_in_flight=LIMIT) == []  # claimed, not yet published: in flight
        for job_id in a_jobs:  # leave the shared database as found
            repo.transition(session, job_id, [JobStatus.QUEUED], JobStatus.FAILED)
        rest = [m.id for m in repo.claim_outbox(session) if m.job_id in a_jobs]
        assert repo.mark_outbox_sent(session, [*(m for m, _ in a), *rest]) == len(a_jobs)
