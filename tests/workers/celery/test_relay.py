"""The outbox relay and the reconciler against real Postgres and the real Redis (DB 5), no worker running."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.jobs.recovery import WORKER_LOST
from service.jobs.relay import CeleryPublisher, Relay
from service.jobs.requeue import MAX_ATTEMPTS
from service.processes.production import celery_spec, make_relay, run_deadline_s
from service.store import repositories as repo
from service.store.models import AuditEvent, Job, JobStatus, OutboxMessage, utcnow
from tests.support.engines import DeterministicEngine
from tests.workers.celery.harness import actions, add_jobs, job
from workers.celery_app import QUEUE
from workers.documents.model import LimitsSpec
from workers.jobs import run_job
from workers.pipeline.run import PipelineOptions

SECRET = "Zanzibar-7731"


@pytest.fixture
def quiet_relay(settings: Settings, factory: sessionmaker[Session], broker: redis.Redis) -> Relay:
    """A relay that is not looping: each test drives it a step at a time, on an empty queue."""
    broker.flushdb()
    return make_relay(settings, factory)


def _outbox(factory: sessionmaker[Session], job_id: uuid.UUID) -> list[OutboxMessage]:
    with factory() as session:
        return list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job_id).order_by(OutboxMessage.id))
        )


def _queued_messages(broker: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in broker.lrange(QUEUE, 0, -1)]


def test_the_relay_publishes_job_ids_only_and_marks_rows_sent(
    quiet_relay: Relay, factory: sessionmaker[Session], broker: redis.Redis
) -> None:
    _, job_ids = add_jobs(factory, [f"{SECRET} agreement number {i}.\n".encode() for i in range(3)])
    assert quiet_relay.relay_once() == 3
    for job_id in job_ids:
        (row,) = _outbox(factory, job_id)
        assert row.sent_at is not None and row.claimed_until is None and row.attempts == 1
    messages = _queued_messages(broker)
    assert len(messages) == 3
    assert SECRET not in str(broker.lrange(QUEUE, 0, -1))
    bodies = [json.loads(base64.b64decode(str(m["body"]))) for m in messages]
    assert sorted(args[0]["job_id"] for args, _kwargs, _embed in bodies) == sorted(str(j) for j in job_ids)
    assert all(args == [{"v": 1, "job_id": args[0]["job_id"]}] for args, _kwargs, _embed in bodies)
    assert {m["content-type"] for m in messages} == {"application/json"}
    assert quiet_relay.relay_once() == 0  # nothing left unsent
    broker.delete(QUEUE)


def test_a_publish_to_a_dead_broker_gives_the_lease_back(
    settings: Settings, quiet_relay: Relay, factory: sessionmaker[Session], broker: redis.Redis
) -> None:
    dead = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/5"})
    stalled = Relay(factory, CeleryPublisher(celery_spec(dead)), lease_s=60)
    _, (job_id,) = add_jobs(factory, [b"Globex note for the dead broker.\n"])
    assert stalled.relay_once() == 0
    assert stalled.publisher.broker_epoch() is None
    (row,) = _outbox(factory, job_id)
    # Released at once (not left leased for a minute), and the claim was counted.
    assert (row.sent_at, row.claimed_until, row.attempts) == (None, None, 1)
    assert quiet_relay.relay_once() >= 1
    (row,) = _outbox(factory, job_id)
    assert row.sent_at is not None and row.attempts == 2
    broker.delete(QUEUE)


def _set_running(factory: sessionmaker[Session], job_id: uuid.UUID, attempts: int, deadline: dt.datetime) -> None:
    with factory.begin() as session:
        assert repo.transition(session, job_id, [JobStatus.QUEUED], JobStatus.RUNNING)
        session.execute(update(Job).where(Job.id == job_id).values(attempts=attempts, deadline=deadline))
        repo.mark_outbox_sent(session, [m.id for m in session.scalars(select(OutboxMessage))])


def test_a_run_past_its_deadline_is_requeued_then_failed_after_the_last_attempt(
    quiet_relay: Relay, factory: sessionmaker[Session]
) -> None:
    _, (lost, last, alive) = add_jobs(factory, [b"Lost run.\n", b"Last run.\n", b"Live run.\n"])
    past, future = utcnow() - dt.timedelta(seconds=1), utcnow() + dt.timedelta(minutes=5)
    _set_running(factory, lost, 1, past)
    _set_running(factory, last, MAX_ATTEMPTS, past)
    _set_running(factory, alive, 1, future)

    done = quiet_relay.reconcile_once()
    assert (done.requeued, done.failed) == (1, 1)

    requeued = job(factory, lost)
    assert (requeued.status, requeued.error_code, requeued.attempts) == (JobStatus.QUEUED, WORKER_LOST, 1)
    assert [m.sent_at for m in _outbox(factory, lost)][-1] is None  # a new message for the relay
    failed = job(factory, last)
    assert (failed.status, failed.error_code) == (JobStatus.FAILED, WORKER_LOST)
    assert failed.error_message is not None and str(MAX_ATTEMPTS) in failed.error_message
    assert job(factory, alive).status is JobStatus.RUNNING
    assert actions(factory, lost)[-1] == "job.requeued" and actions(factory, last)[-1] == "job.failed"
    with factory() as session:
        actors = set(session.scalars(select(AuditEvent.actor).where(AuditEvent.target_id.in_([str(lost), str(last)]))))
    assert actors == {"reconciler"}
    assert quiet_relay.reconcile_once().requeued == 0  # settled once, not again


def test_a_job_queued_too_long_after_its_message_is_published_again(
    quiet_relay: Relay, factory: sessionmaker[Session]
) -> None:
    _, (stale, fresh, pending) = add_jobs(factory, [b"Stale queue.\n", b"Fresh queue.\n", b"Pending queue.\n"])
    long_ago = utcnow() - dt.timedelta(hours=2)
    with factory.begin() as session:
        for job_id, sent in ((stale, long_ago), (fresh, utcnow())):
            session.execute(update(Job).where(Job.id == job_id).values(updated_at=long_ago))
            session.execute(update(OutboxMessage).where(OutboxMessage.job_id == job_id).values(sent_at=sent))
        session.execute(update(Job).where(Job.id == pending).values(updated_at=long_ago))

    assert quiet_relay.reconcile_once().republished == 1
    assert [m.sent_at is None for m in _outbox(factory, stale)] == [False, True]
    assert len(_outbox(factory, fresh)) == 1 and len(_outbox(factory, pending)) == 1
    assert job(factory, stale).status is JobStatus.QUEUED
    assert quiet_relay.reconcile_once().republished == 0  # its new message is pending now


def test_a_started_run_gets_its_deadline(factory: sessionmaker[Session]) -> None:
    _, (job_id,) = add_jobs(factory, [b"Pied Piper agreement.\n"])
    before = utcnow()
    run_job(factory, job_id, DeterministicEngine(), PipelineOptions(), LimitsSpec(), run_deadline_s=120.0)
    after = utcnow()
    settled = job(factory, job_id)
    assert settled.status is JobStatus.SUCCEEDED and settled.deadline is not None
    assert before + dt.timedelta(seconds=120) <= settled.deadline <= after + dt.timedelta(seconds=120)


@pytest.mark.parametrize(
    ("overrides", "wrong"),
    [
        ({"task_soft_time_limit_s": 60.0, "task_time_limit_s": 60.0}, "SOFT_TIME_LIMIT"),
        ({"task_time_limit_s": 60.0, "broker_visibility_timeout_s": 60.0}, "VISIBILITY_TIMEOUT"),
    ],
    ids=["soft-not-below-hard", "visibility-not-above-hard"],
)
def test_settings_refuse_limits_that_would_redeliver_running_tasks(overrides: dict[str, float], wrong: str) -> None:
    with pytest.raises(ValueError, match=wrong):
        Settings.model_validate({"task_soft_time_limit_s": 30.0, **overrides})


def test_the_default_visibility_timeout_outlasts_the_job_deadline() -> None:
    settings = Settings(_env_file=None, broker_url="redis://127.0.0.1:6379/5")  # type: ignore[call-arg]
    spec = celery_spec(settings)
    assert spec.visibility_timeout_s > run_deadline_s(settings) > spec.time_limit_s > spec.soft_time_limit_s
