"""The outbox relay and the reconciler: the only code that talks to the broker, and what repairs it.

The API commits a job and its outbox row in one transaction and never talks to Redis, so uploads are
accepted while Redis is down. The relay claims unsent outbox rows under a lease (FOR UPDATE SKIP
LOCKED on Postgres, so several relays never publish the same row at once), publishes each job id,
and marks the rows sent; a relay that dies mid-way lets its lease lapse and the rows are published
again. Delivery is therefore at least once, and the worker's guarded queued→running transition makes
duplicates harmless.

Redis keeps nothing on disk here, and a worker can be killed mid-job, so the reconciler repairs what
the queue lost, from what Postgres knows (`service.jobs.recovery`): runs past their deadline are
requeued or failed, and queued jobs whose message went out too long ago, or before Redis restarted
(its run id changed), are published again.

The relay counts what it saw (`publish_failures`, `broker_restarts`), for tests and health checks to
read instead of its logs.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

import redis
from sqlalchemy.orm import Session, sessionmaker

from service.jobs import recovery
from service.jobs.messages import ExtractMessage
from service.store import repositories as repo
from service.store.models import utcnow
from workers.celery_app import EXTRACT_TASK, QUEUE, CelerySpec, publisher_app

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where job ids go: the Celery queue in production."""

    def publish(self, job_id: uuid.UUID, message_id: int) -> None:
        """Send one job's message; raise if the broker did not take it."""

    def broker_epoch(self) -> str | None:
        """An id that changes whenever the broker restarts empty (Redis's run id); None when unreachable."""

    def close(self) -> None:
        """Release connections."""


class CeleryPublisher:
    """Publishes `ExtractMessage`s by task name to the extractions queue; fails fast when Redis is down."""

    def __init__(self, spec: CelerySpec) -> None:
        self.app = publisher_app(spec)
        self._probe = redis.Redis.from_url(
            spec.broker_url,
            socket_timeout=spec.socket_timeout_s,
            socket_connect_timeout=spec.socket_timeout_s,
            health_check_interval=int(spec.health_check_interval_s),
        )

    def publish(self, job_id: uuid.UUID, message_id: int) -> None:
        """One task message (a job id, nothing else); the task id names the outbox row for tracing."""
        self.app.send_task(
            EXTRACT_TASK,
            args=[ExtractMessage(job_id=job_id).payload()],
            queue=QUEUE,
            task_id=f"{job_id}:{message_id}",
            retry=False,
        )

    def broker_epoch(self) -> str | None:
        """Redis's run id, which a restart (with nothing persisted, everything queued lost) changes."""
        try:
            info = self._probe.info("server")
        except redis.RedisError:
            return None
        run_id = info.get("run_id")
        return str(run_id) if run_id else None

    def close(self) -> None:
        """Drop the probe connection (kombu's connection pool is process-wide, shared by URL: left open)."""
        self._probe.close()


@dataclass(frozen=True)
class Reconciled:
    """What one reconcile pass did."""

    requeued: int = 0
    failed: int = 0
    republished: int = 0


class Relay:
    """Publishes the outbox and reconciles stuck jobs; runs as a thread (`start`) or in the foreground (`run`)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        publisher: Publisher,
        *,
        lease_s: float = 60.0,
        batch: int = 100,
        poll_s: float = 1.0,
        reconcile_interval_s: float = 30.0,
        run_deadline_s: float = 1920.0,
        queued_timeout_s: float = 3600.0,
        tenant_max_in_flight: int | None = None,
    ) -> None:
        self._factory = session_factory
        self.publisher = publisher
        self._lease = dt.timedelta(seconds=lease_s)
        self._batch = batch
        self._poll_s = poll_s
        self._reconcile_interval_s = reconcile_interval_s
        self._run_deadline = dt.timedelta(seconds=run_deadline_s)
        self._queued_timeout = dt.timedelta(seconds=queued_timeout_s)
        self._tenant_max_in_flight = tenant_max_in_flight
        self._epoch: str | None = None
        self._next_reconcile = 0.0
        self.publish_failures = 0
        """Publish attempts the broker refused (each gives its claimed rows back)."""
        self.broker_restarts = 0
        """Broker restarts seen (its run id changed), each followed by a republish of every queued job."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- relay ---------------------------------------------------------------------------------------

    def relay_once(self) -> int:
        """Claim a batch of unsent rows, publish them, mark the published ones sent; returns how many.

        With `tenant_max_in_flight`, a tenant's jobs running or published but not yet finished count
        against it: Redis's queue cannot be reordered, so its further rows stay unsent until one finishes.
        """
        with self._factory.begin() as session:
            messages = repo.claim_outbox(
                session, limit=self._batch, lease=self._lease, max_in_flight=self._tenant_max_in_flight
            )
            claimed = [(m.id, m.job_id) for m in messages]
        if not claimed:
            return 0
        sent: list[int] = []
        try:
            for message_id, job_id in claimed:
                self.publisher.publish(job_id, message_id)
                sent.append(message_id)
        except Exception as e:  # noqa: BLE001 - any broker fault: give the rest back, retry next poll
            self.publish_failures += 1
            log.warning("publish failed", extra={"exc_type": type(e).__name__, "unsent": len(claimed) - len(sent)})
            with self._factory.begin() as session:
                repo.release_outbox(session, [m for m, _ in claimed if m not in sent])
        finally:
            # Rows published but not marked (the store failed here) are published again after the lease.
            if sent:
                with self._factory.begin() as session:
                    repo.mark_outbox_sent(session, sent)
        if sent:
            log.info("outbox published", extra={"messages": len(sent)})
        return len(sent)

    # --- reconciler ----------------------------------------------------------------------------------

    def check_broker(self) -> bool:
        """Republish every queued job if Redis restarted since the last look; True when it did."""
        epoch = self.publisher.broker_epoch()
        if epoch is None:
            return False
        previous, self._epoch = self._epoch, epoch
        if previous is None or previous == epoch:
            return False
        republished = self._republish_queued(utcnow())
        self.broker_restarts += 1
        log.warning("broker restarted; queued jobs republished", extra={"jobs": republished})
        return True

    def reconcile_once(self, now: dt.datetime | None = None) -> Reconciled:
        """Requeue or fail jobs running past their deadline; republish jobs queued too long."""
        now = now or utcnow()
        requeued, failed = self._settle_lost_runs(now)
        republished = self._republish_queued(now - self._queued_timeout)
        done = Reconciled(requeued=requeued, failed=failed, republished=republished)
        if requeued or failed or republished:
            log.warning("reconciled stuck jobs", extra=vars(done))
        return done

    def _settle_lost_runs(self, now: dt.datetime) -> tuple[int, int]:
        with self._factory.begin() as session:
            return recovery.settle_lost_runs(session, now, self._run_deadline, self._batch)

    def _republish_queued(self, published_before: dt.datetime) -> int:
        """A new outbox row for each queued job with no message pending and none published since the cutoff."""
        total = 0
        while True:
            with self._factory.begin() as session:
                added = recovery.republish_queued(session, published_before, self._batch)
            total += added
            if added < self._batch:
                return total

    # --- running -------------------------------------------------------------------------------------

    def step(self) -> int:
        """One pass: look at the broker, publish, and reconcile when due; returns the messages published."""
        self.check_broker()
        published = self.relay_once()
        if time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + self._reconcile_interval_s
            self.reconcile_once()
        return published

    def run(self) -> None:
        """Loop until `stop`; a full batch goes round again at once, anything less waits for a poll or a wake."""
        while not self._stop.is_set():
            try:
                busy = self.step() >= self._batch
            except Exception as e:  # noqa: BLE001 - the loop must outlive store and broker outages
                log.error("relay iteration failed", extra={"exc_type": type(e).__name__})
                busy = False
            if not busy:
                self._wake.wait(self._poll_s)
                self._wake.clear()

    def start(self) -> None:
        """Run in a daemon thread (the API process's background); idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="abstractor-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.publisher.close()

    def wake(self) -> None:
        """A job was queued: publish now rather than at the next poll."""
        self._wake.set()

    def alive(self) -> bool:
        """Whether the relay thread runs (readiness reports it)."""
        return self._thread is not None and self._thread.is_alive()

    def run_until_signalled(self) -> None:
        """Run in the foreground until SIGTERM or SIGINT (the `abstractor relay` process)."""

        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("relay stopping", extra={"signal": signum})
            self._stop.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            self.run()
        finally:
            self.publisher.close()
