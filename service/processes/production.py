"""The production processes: `abstractor api`, `abstractor relay` and `abstractor worker`.

- api: the REST API (uvicorn) with the outbox relay and reconciler as a background thread when a
  broker is configured; the request path itself only writes to Postgres.
- relay: the relay and reconciler alone, for deployments that scale them apart from the API.
- worker: a Celery worker on the `extractions` queue; each pool process builds its store connection
  and its engine (from the settings, via `service.runtime.engine_from`) once, lazily, on first use.

Settings become plain values here (`CelerySpec`, `TaskRuntime`), since the workers never read them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.api import create_app
from service.api.observability import configure_api_logging
from service.api.server import serve_app
from service.config import Settings
from service.jobs.relay import CeleryPublisher, Relay
from service.runtime import engine_from, limits_from, options_from
from service.store.session import make_engine, make_session_factory
from workers.celery_app import QUEUE, CelerySpec, configure
from workers.engines.protocol import Engine
from workers.errors import ConfigError
from workers.tasks import TaskRuntime, install_runtime, once

log = logging.getLogger(__name__)


def _broker_url(settings: Settings) -> str:
    if settings.broker_url is None:
        raise ConfigError("ABSTRACTOR_BROKER_URL is not set (redis://host:6379/0)", code="no_broker")
    return settings.broker_url


def run_deadline_s(settings: Settings) -> float:
    """How long after its start a running job is presumed dead: the hard time limit plus a margin."""
    return settings.task_time_limit_s + settings.job_deadline_margin_s


def celery_spec(settings: Settings) -> CelerySpec:
    """The queue's settings; the visibility timeout defaults to the job deadline plus the margin again."""
    visibility = settings.broker_visibility_timeout_s or run_deadline_s(settings) + settings.job_deadline_margin_s
    return CelerySpec(
        broker_url=_broker_url(settings),
        soft_time_limit_s=settings.task_soft_time_limit_s,
        time_limit_s=settings.task_time_limit_s,
        visibility_timeout_s=visibility,
        health_check_interval_s=settings.broker_health_check_s,
    )


def _session_factory(settings: Settings) -> sessionmaker[Session]:
    # hide_parameters: SQL errors never echo parameters (document bytes, extracted values) into logs.
    return make_session_factory(make_engine(settings.database_url, hide_parameters=True))


def make_relay(settings: Settings, session_factory: sessionmaker[Session] | None = None) -> Relay:
    """The relay and reconciler over the store, publishing to the configured broker."""
    return Relay(
        session_factory or _session_factory(settings),
        CeleryPublisher(celery_spec(settings)),
        lease_s=settings.outbox_lease_s,
        batch=settings.relay_batch,
        poll_s=settings.relay_poll_s,
        reconcile_interval_s=settings.reconcile_interval_s,
        run_deadline_s=run_deadline_s(settings),
        queued_timeout_s=settings.queued_timeout_s,
        tenant_max_in_flight=settings.tenant_max_in_flight or None,
    )


def build_api_app(settings: Settings, session_factory: sessionmaker[Session] | None = None) -> FastAPI:
    """The API; with a broker configured, the relay runs beside it (started and stopped with the app)."""
    factory = session_factory or _session_factory(settings)
    relay = make_relay(settings, factory) if settings.broker_url is not None else None
    return create_app(settings, session_factory=factory, background=relay)


def serve_api(host: str, port: int, settings: Settings) -> None:
    """Serve the API until interrupted (migrations are a separate step: `abstractor migrate`)."""
    configure_api_logging(settings.log_level)
    app = build_api_app(settings)
    log.info("serving", extra={"host": host, "port": port, "relay": settings.broker_url is not None})
    # service/api/server.py: our logging, and the front door's timeouts and limits from the settings.
    serve_app(settings, app, host=host, port=port)


def run_relay(settings: Settings) -> None:
    """Run the relay and reconciler in the foreground until SIGTERM."""
    from service.webhooks import WebhookDeliverer

    configure_api_logging(settings.log_level)
    factory = _session_factory(settings)
    relay = make_relay(settings, factory)
    # Webhooks ride along with the relay (the API process does the same when it runs the relay).
    deliverer = WebhookDeliverer.from_settings(factory, settings)
    if deliverer is not None:
        deliverer.start()
    log.info("relay running", extra={"reconcile_interval_s": settings.reconcile_interval_s})
    try:
        relay.run_until_signalled()
    finally:
        if deliverer is not None:
            deliverer.stop()


def worker_pool(settings: Settings) -> str:
    """How a worker runs its jobs: threads where one engine serves many jobs at once, else processes.

    An engine server (vLLM behind `openai`) or in-process vLLM batches every request in flight, so one
    worker keeps many documents going on threads that share the engine and its bound on requests in
    flight. llama.cpp runs one request at a time per model: one process (and model) per job.
    """
    if settings.worker_pool != "auto":
        return settings.worker_pool
    return "threads" if settings.engine in ("openai", "vllm") else "prefork"


def task_runtime(settings: Settings, engine: Callable[[], Engine] | None = None) -> Callable[[], TaskRuntime]:
    """A factory of one worker process's runtime; `engine` (tests inject one) defaults to the configured engine."""
    build_engine = engine or (lambda: engine_from(settings))

    def build() -> TaskRuntime:
        return TaskRuntime(
            session_factory=_session_factory(settings),
            engine=once(build_engine),
            options=options_from(settings),
            limits=limits_from(settings),
            blob_dir=settings.blob_dir,
            run_deadline_s=run_deadline_s(settings),
            retry_backoff_s=settings.retry_backoff_s,
            time_limit_s=settings.task_soft_time_limit_s,
        )

    return build


def run_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    engine: Callable[[], Engine] | None = None,
    hostname: str | None = None,
    pool: str | None = None,
) -> None:
    """Run a Celery worker on the extractions queue until SIGTERM.

    The threads pool (see `worker_pool`) runs `concurrency` jobs at once over one engine; Celery's time
    limits need processes, so there the pipeline keeps the soft limit itself and the reconciler the hard
    one (a run past its deadline is requeued). The prefork pool runs `concurrency` processes, each with
    its own engine, under Celery's soft and hard limits.
    """
    configure_api_logging(settings.log_level)
    app = configure(celery_spec(settings))
    install_runtime(task_runtime(settings, engine))
    pool = pool or worker_pool(settings)
    if concurrency is None:
        concurrency = settings.worker_concurrency if pool == "threads" else 1
    argv = [
        "worker",
        f"--queues={QUEUE}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={settings.log_level.upper()}",
        # Gossip and mingle are for worker-to-worker chatter we do not use; skipping them speeds restarts.
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname is not None:
        argv.append(f"--hostname={hostname}")
    log.info("worker starting", extra={"concurrency": concurrency, "pool": pool, "queue": QUEUE})
    app.worker_main(argv)
