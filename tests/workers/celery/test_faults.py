"""Fault runs: workers SIGKILLed at random moments, Redis restarted empty, Redis down during uploads.

These stop the real Redis on 127.0.0.1:6379 (other suites using it meanwhile see it down for a few
seconds), so they live in this one slow module and always bring Redis back (scripts/services-up),
even when they fail. Redis keeps nothing on disk: what it held is lost, and the relay and the
reconciler must republish it from Postgres.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.jobs.relay import Relay
from service.jobs.requeue import MAX_ATTEMPTS
from service.processes.production import build_api_app
from service.store.models import AuditEvent, Job, JobStatus, OutboxMessage, Result
from tests.support.api import make_tenant
from tests.support.servers import ThreadedServer
from tests.workers.celery.harness import (
    WorkerProcess,
    add_jobs,
    ensure_redis_running,
    queue_settings,
    statuses,
    stop_redis,
    wait_until,
)

pytestmark = pytest.mark.slow

JOBS = 200
MIN_KILLS = 20
MAX_KILLS = 26
JOB_DELAY_S = 0.2
TIME_BUDGET_S = 170.0
ADMIN_TOKEN = "celery-fault-admin-token-5b1e9d0c7a"


@pytest.fixture(scope="module")
def settings(queue_db: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The queue settings, with a backstop republish slower than the backlog takes to drain."""
    return queue_settings(
        queue_db, tmp_path_factory.mktemp("fault-data"), queued_timeout_s=30.0, admin_token=ADMIN_TOKEN
    )


@pytest.fixture
def redis_restored(broker: redis.Redis) -> Iterator[None]:
    """Whatever happens in the test, Redis is running again afterwards."""
    try:
        yield
    finally:
        ensure_redis_running()


def _running_on_last_attempt(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.status == JobStatus.RUNNING, Job.attempts >= MAX_ATTEMPTS)
            )
            or 0
        )


def _per_job(factory: sessionmaker[Session], job_ids: list[uuid.UUID], action: str) -> dict[str, int]:
    with factory() as session:
        rows = session.execute(
            select(AuditEvent.target_id, func.count())
            .where(AuditEvent.action == action, AuditEvent.target_id.in_([str(j) for j in job_ids]))
            .group_by(AuditEvent.target_id)
        ).all()
    return {target: int(n) for target, n in rows if target is not None}


def _published(factory: sessionmaker[Session], job_ids: list[uuid.UUID]) -> int:
    """Outbox rows of these jobs the relay has published (marked sent)."""
    with factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.job_id.in_(job_ids), OutboxMessage.sent_at.is_not(None))
            )
            or 0
        )


@pytest.mark.parametrize(
    ("pool", "concurrency", "delay_s"),
    [
        # One job per pool process (llama.cpp workers): a pool-process kill loses one run.
        pytest.param("prefork", 1, JOB_DELAY_S, id="prefork"),
        # Jobs as threads over one engine (vLLM workers): a kill loses every run in flight in that worker.
        pytest.param("threads", 2, 2.5 * JOB_DELAY_S, id="threads"),
    ],
)
def test_200_jobs_survive_random_worker_kills_and_a_redis_restart(
    pool: str,
    concurrency: int,
    delay_s: float,
    settings: Settings,
    factory: sessionmaker[Session],
    relay: Relay,
    redis_restored: None,
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("FAULT_SEED", str(random.SystemRandom().randrange(1_000_000))))
    rng = random.Random(seed)
    workers = [
        WorkerProcess(
            settings, tmp_path / f"w{i}.log", delay_s=delay_s, name=f"w{i}", pool=pool, concurrency=concurrency
        ).start()
        for i in range(2)
    ]
    started = time.monotonic()
    _, job_ids = add_jobs(factory, [f"Agreement {i} between Acme and Initech.\n".encode() for i in range(JOBS)])
    relay.wake()
    kills = pool_kills = spared = 0
    redis_restarted_at: int | None = None
    try:
        while True:
            done = statuses(factory, job_ids).get(JobStatus.SUCCEEDED, 0)
            if done == JOBS:
                break
            assert time.monotonic() - started < TIME_BUDGET_S, f"only {done}/{JOBS} done (seed {seed})"
            time.sleep(rng.uniform(0.3, 1.0))
            if redis_restarted_at is None and done >= JOBS * 0.4:
                stop_redis()
                time.sleep(1.0)
                ensure_redis_running()
                redis_restarted_at = done
                continue
            # Kill only a worker in the middle of a job, so that every kill costs a run to recover.
            busy = [w for w in workers if w.busy()]
            if kills >= MAX_KILLS or not busy:
                continue
            # A fourth run cannot happen: a kill now would fail a job on its last attempt, by design.
            if _running_on_last_attempt(factory):
                spared += 1
                continue
            victim = rng.choice(busy)
            if rng.random() < 0.5 and victim.kill_pool_process():
                pool_kills += 1  # the Celery parent hands the message back and forks a new pool process
            else:
                victim.kill()  # the whole worker, as a lost node would; restarted as an orchestrator would
                victim.start()
            kills += 1
        wall_s = time.monotonic() - started
    finally:
        for w in workers:
            w.stop()

    succeeded_events = _per_job(factory, job_ids, "job.succeeded")
    runs = _per_job(factory, job_ids, "job.running")
    with factory() as session:
        results = dict(
            session.execute(
                select(Result.job_id, func.count()).where(Result.job_id.in_(job_ids)).group_by(Result.job_id)
            ).all()
        )
        attempts = sum(session.scalars(select(Job.attempts).where(Job.id.in_(job_ids))))
    published = _published(factory, job_ids)
    lost_runs = sum(_per_job(factory, job_ids, "job.requeued").values())
    figures = {
        "pool": pool,
        "seed": seed,
        "jobs": JOBS,
        "kills": kills,
        "kills_of_pool_process_only": pool_kills,
        "kills_spared_last_attempt": spared,
        "lost_runs_requeued": lost_runs,
        "extra_runs": attempts - JOBS,
        # Messages that started no run: redeliveries the guarded start skipped, or lost with Redis.
        "published_without_a_run": published - sum(runs.values()),
        "redis_restarted_after_jobs": redis_restarted_at,
        "duplicates": sum(n - 1 for n in succeeded_events.values() if n > 1) + sum(n - 1 for n in results.values()),
        "lost": JOBS - len(results),
        "wall_s": round(wall_s, 1),
    }
    print("fault run:", json.dumps(figures))

    assert kills >= MIN_KILLS, figures
    assert redis_restarted_at is not None
    assert all(succeeded_events.get(str(j)) == 1 for j in job_ids), figures
    assert all(results.get(j) == 1 for j in job_ids), figures
    assert sum(runs.values()) == attempts  # every started run was counted in Postgres
    assert lost_runs >= MIN_KILLS // 2  # kills landed mid-job and the reconciler recovered those runs
    # Redis came back empty; the relay noticed (its run id changed) and published the queued jobs again.
    assert relay.broker_restarts >= 1


def test_uploads_are_accepted_while_redis_is_down_and_complete_once_it_is_back(
    settings: Settings,
    factory: sessionmaker[Session],
    broker: redis.Redis,
    redis_restored: None,
    tmp_path: Path,
) -> None:
    worker = WorkerProcess(settings, tmp_path / "worker.log", delay_s=0.02).start()
    app = build_api_app(settings, factory)  # the `abstractor api` app: the relay runs beside it
    try:
        with ThreadedServer(app) as server, httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            tenant = make_tenant(client, ADMIN_TOKEN)
            stop_redis()
            job_ids = []
            for i in range(50):
                content = f"Outage note {i}: Wayne Enterprises and Stark Industries.\n".encode()
                upload = client.post("/v1/documents", files={"file": (f"n{i}.txt", content)}, headers=tenant.headers)
                assert upload.status_code == 201, upload.text
                submitted = client.post(
                    "/v1/extractions",
                    json={"document_id": upload.json()["id"], "schema_name": "nda"},
                    headers=tenant.headers,
                )
                assert submitted.status_code == 202, submitted.text
                job_ids.append(uuid.UUID(submitted.json()["id"]))
            assert client.get("/readyz").json()["checks"]["broker"] == "error"  # seen, yet uploads still accepted
            relay = app.state.ctx.background
            assert isinstance(relay, Relay)
            failures = relay.publish_failures
            wait_until(lambda: relay.publish_failures > failures, 30, "the relay to try the dead broker again")
            assert statuses(factory, job_ids) == {JobStatus.QUEUED: 50}
            assert _published(factory, job_ids) == 0  # it kept every row for later

            ensure_redis_running()
            wait_until(
                lambda: statuses(factory, job_ids).get(JobStatus.SUCCEEDED, 0) == 50, 90, "50 jobs after Redis is back"
            )
            polled = [client.get(f"/v1/extractions/{j}", headers=tenant.headers).json() for j in job_ids]
            assert {p["status"] for p in polled} == {"succeeded"}
            assert client.get("/readyz").json()["checks"]["broker"] == "ok"
    finally:
        worker.stop()
