"""`abstractor serve`: the API and an in-process worker over one SQLite file, no other server needed.

The worker is a background thread that claims outbox rows (the same rows the Celery relay would
publish), runs each job with `workers.jobs.run_job`, then marks the row sent. The API wakes it
when it queues a job, so a newcomer's curl session does not wait for a poll. The model is loaded on
the first job, not at start-up, so the API answers at once; tests inject a small engine instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import threading
import time
import uuid
from collections.abc import Iterator

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.api import create_app
from service.api.observability import Metrics, configure_api_logging, job_id_var
from service.api.server import serve_app
from service.background import PollingThread
from service.config import Settings
from service.errors import ServiceError
from service.jobs.identity import engine_ref
from service.jobs.recovery import recover_serve_restart
from service.runtime import engine_from, limits_from, options_from
from service.store import repositories as repo
from service.store.files import private_file
from service.store.session import make_engine, make_session_factory, run_migrations
from workers.engines.protocol import Engine
from workers.jobs import run_job

log = logging.getLogger(__name__)

SERVE_LOCK = "serve.lock"
"""The file in the data folder that one serve holds locked while it runs."""
RECOVERY_BATCH = 500

MAX_DELIVERIES = 5
"""An outbox row whose delivery kept crashing the runner is given up after this many claims."""


class EmbeddedWorker(PollingThread):
    """A daemon thread running queued jobs one at a time (one model, one CPU budget)."""

    thread_name = "abstractor-worker"

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        *,
        engine: Engine | None = None,
        metrics: Metrics | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(poll_s=poll_s)
        self._factory = session_factory
        self._settings = settings
        self._engine = engine
        self._engine_lock = threading.Lock()
        self.metrics = metrics

    def engine(self) -> Engine:
        """The injected engine, or the configured one, built on first use (loading takes seconds)."""
        with self._engine_lock:
            if self._engine is None:
                s = self._settings
                log.info("loading engine", extra={"engine": s.engine, "grammar_backend": s.grammar_backend})
                self._engine = engine_from(s)
            return self._engine

    def run_once(self) -> bool:
        """Claim one outbox message and run its job; False when there was nothing to do."""
        lease = dt.timedelta(seconds=self._settings.outbox_lease_s)
        with self._factory.begin() as session:
            # Rows are marked sent here once their job has run: a sent row is never in flight (broker=False).
            limit = self._settings.tenant_max_in_flight or None
            claimed = repo.claim_outbox(session, limit=1, lease=lease, max_in_flight=limit, broker=False)
            messages = [(m.id, m.job_id, m.attempts) for m in claimed]
        if not messages:
            return False
        for message_id, job_id, deliveries in messages:
            if deliveries > MAX_DELIVERIES:
                log.error("outbox message given up", extra={"job_id": str(job_id), "deliveries": deliveries})
            else:
                try:
                    self._run(job_id)
                except Exception:
                    with self._factory.begin() as session:
                        repo.release_outbox(session, [message_id])
                    raise
            with self._factory.begin() as session:
                repo.mark_outbox_sent(session, [message_id])
        return True

    def _run(self, job_id: uuid.UUID) -> None:
        token = job_id_var.set(str(job_id))
        started = time.perf_counter()
        try:
            run_job(
                self._factory,
                job_id,
                self.engine,
                options_from(self._settings),
                limits_from(self._settings),
                blob_dir=self._settings.blob_dir,
            )
        finally:
            job_id_var.reset(token)
        if self.metrics is not None:
            with self._factory() as session:
                job = repo.load_job(session, job_id)
                status = job.status.value if job is not None else "unknown"
            self.metrics.jobs_finished.labels(status).inc()
            self.metrics.job_duration.labels(status).observe(time.perf_counter() - started)


def build_embedded_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    poll_s: float = 1.0,
) -> FastAPI:
    """The API with an embedded worker over `settings.database_url` (migrated beforehand)."""
    if session_factory is None:
        session_factory = make_session_factory(make_engine(settings.database_url, hide_parameters=True))
    worker = EmbeddedWorker(session_factory, settings, engine=engine, poll_s=poll_s)
    model = engine_ref(engine.info) if engine is not None else None  # None: keyed by the settings' engine
    app = create_app(settings, session_factory=session_factory, background=worker, model=model)
    worker.metrics = app.state.ctx.metrics
    return app


class ServeAlreadyRunning(ServiceError):
    """Another `abstractor serve` holds this data folder: two in-process workers over one store would take
    each other's running jobs for lost ones."""

    code = "serve_already_running"


@contextlib.contextmanager
def sole_worker(settings: Settings) -> Iterator[None]:
    """Hold `DATA_DIR/serve.lock` (flock) for the process's life; refuse to start when another serve has it.

    The kernel drops the lock when the process dies however it dies, so a SIGKILL leaves nothing stale.
    """
    lock_path = private_file(settings.data_dir / SERVE_LOCK)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise ServeAlreadyRunning(
                f"another abstractor serve is running on the data folder {settings.data_dir}"
            ) from e
        yield


def recover_at_start(session_factory: sessionmaker[Session]) -> tuple[int, int]:
    """Settle the jobs the previous serve left running (it was their only worker); returns (requeued, failed)."""
    requeued = failed = 0
    while True:
        with session_factory.begin() as session:
            r, f = recover_serve_restart(session, limit=RECOVERY_BATCH)
        requeued, failed = requeued + r, failed + f
        if r + f < RECOVERY_BATCH:
            return requeued, failed


def serve(host: str, port: int, settings: Settings, *, engine: Engine | None = None) -> None:
    """Migrate the database, settle what a previous run left running, then serve the API and run jobs
    in-process until interrupted."""
    configure_api_logging(settings.log_level)
    with sole_worker(settings):
        _serve(host, port, settings, engine)


def _serve(host: str, port: int, settings: Settings, engine: Engine | None) -> None:
    run_migrations(settings.database_url, app_role=settings.database_app_role)
    factory = make_session_factory(make_engine(settings.database_url, hide_parameters=True))
    requeued, failed = recover_at_start(factory)
    if requeued or failed:
        log.warning("jobs left running by the previous serve settled", extra={"requeued": requeued, "failed": failed})
    app = build_embedded_app(settings, engine=engine, session_factory=factory)
    log.info("serving", extra={"host": host, "port": port})
    # service/api/server.py: our logging, and the front door's timeouts and limits from the settings.
    serve_app(settings, app, host=host, port=port)
