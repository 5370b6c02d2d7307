"""The extraction task: validate a small versioned message, then run the job by its id.

The task is a thin shell over `workers.jobs.run_job`, which runs the job's life in the store:
a guarded queued→running transition that counts the attempt (so a second delivery, or a delivery of
a finished job, changes nothing), the result with its status and audit event in one transaction, and
a durable requeue with backoff (a new outbox row) for transient faults until `MAX_ATTEMPTS`. Celery's
own retry is kept for the one case the store cannot record: the store itself being unreachable.

What a process needs (sessions, engine, budgets) comes from a `TaskRuntime` factory that the
process's launcher installs (`service.processes.production.run_worker`); it is built once per worker process,
after the fork, and the engine inside it on the first job that needs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.messages import ExtractMessage
from service.store.errors import is_transient
from workers.celery_app import EXTRACT_TASK, QUEUE, app
from workers.documents.model import LimitsSpec
from workers.engines.protocol import Engine
from workers.errors import ConfigError
from workers.jobs import run_job
from workers.pipeline.run import PipelineOptions

log = logging.getLogger(__name__)

STORE_RETRIES = 5
"""Deliveries retried while the store is unreachable; then the reconciler republishes the queued job."""


@dataclass(frozen=True)
class TaskRuntime:
    """What a worker process runs jobs with; `engine` is a factory, called when a job first needs it."""

    session_factory: sessionmaker[Session]
    engine: Callable[[], Engine]
    options: PipelineOptions
    limits: LimitsSpec
    blob_dir: Path | None = None
    run_deadline_s: float | None = None
    retry_backoff_s: float = 0.0
    time_limit_s: float | None = None


class _Runtimes:
    """The installed factory and this process's runtime, built on first use."""

    def __init__(self) -> None:
        self.factory: Callable[[], TaskRuntime] | None = None
        self.runtime: TaskRuntime | None = None
        self.lock = threading.Lock()

    def get(self) -> TaskRuntime:
        with self.lock:
            if self.runtime is None:
                if self.factory is None:
                    raise ConfigError("no task runtime installed; start workers with `abstractor worker`")
                self.runtime = self.factory()
            return self.runtime


_runtimes = _Runtimes()


def install_runtime(factory: Callable[[], TaskRuntime]) -> None:
    """Set how this process (and the pool processes it forks) builds its runtime."""
    with _runtimes.lock:
        _runtimes.factory = factory
        _runtimes.runtime = None


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _after_fork(**_: object) -> None:
    # Connections and models are not shared across a fork: each pool process builds its own.
    _runtimes.runtime = None


def once(factory: Callable[[], Engine]) -> Callable[[], Engine]:
    """A thread-safe memo of `factory`: the engine is built at most once per process, when first needed."""
    built: list[Engine] = []
    lock = threading.Lock()

    def get() -> Engine:
        with lock:
            if not built:
                started = time.perf_counter()
                built.append(factory())
                log.info("engine loaded", extra={"seconds": round(time.perf_counter() - started, 3)})
            return built[0]

    return get


@app.task(  # type: ignore[untyped-decorator]
    name=EXTRACT_TASK, bind=True, queue=QUEUE, ignore_result=True, max_retries=STORE_RETRIES
)
def extract(self: Task[Any, Any], message: Any) -> None:
    """Run the job named by `message`; a malformed message is logged and dropped (never retried)."""
    try:
        parsed = ExtractMessage.model_validate(message)
    except ValidationError as e:
        # Only the error kinds are logged: a malformed message could carry anything.
        log.error("invalid task message dropped", extra={"errors": sorted({err["type"] for err in e.errors()})})
        return
    rt = _runtimes.get()
    try:
        run_job(
            rt.session_factory,
            parsed.job_id,
            rt.engine,
            rt.options,
            rt.limits,
            blob_dir=rt.blob_dir,
            run_deadline_s=rt.run_deadline_s,
            retry_backoff_s=rt.retry_backoff_s,
            time_limit_errors=(SoftTimeLimitExceeded,),
            time_limit_s=rt.time_limit_s,
        )
    except Exception as e:
        if not is_transient(e):
            raise
        retries = self.request.retries
        log.warning(
            "store unreachable; delivery retried",
            extra={"job_id": str(parsed.job_id), "exc_type": type(e).__name__, "retry": retries + 1},
        )
        raise self.retry(exc=e, countdown=min(60, 2**retries)) from e
