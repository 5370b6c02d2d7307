"""Run one queued extraction job: the worker's half of the house, free of HTTP and of any queue.

A worker receives a job id only. `run_job` moves the job queued→running (a guarded UPDATE, so a
redelivered message or a second worker does nothing), reads the document from the store, runs the
pure pipeline, and stores the result together with the succeeded status and its audit event in one
transaction. Bad input fails the job for good with an error code; a transient fault requeues it until
`MAX_ATTEMPTS` (the policy, and the requeue itself, are `service.jobs.requeue`'s). A job with a webhook
URL gets its notification queued (a `webhook_deliveries` row) in the transaction that settles it;
`service.webhooks` delivers it after commit. Logs and audit rows carry ids, codes, counts and timings,
never document text or extracted values, and exception messages are not logged (a third-party one may
quote its input).

A started job gets a deadline (its worker's hard time limit plus a margin): a job still running past it
lost its worker, and the reconciler (`service.jobs.recovery`) requeues it, or fails it once `MAX_ATTEMPTS`
runs have started. Attempts are counted when a run starts, so a run killed mid-way still counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from schemas.bounds import SchemaBounds
from schemas.errors import SchemaError
from service.jobs.requeue import backoff_s, may_requeue, settle_failed_run
from service.jobs.resolve import job_schema
from service.store import audit
from service.store import repositories as repo
from service.store.errors import StoreError, is_transient
from service.store.models import AuditOutcome, JobStatus, utcnow
from workers.documents.model import LimitsSpec
from workers.documents.reader import read_document
from workers.engines.protocol import Engine
from workers.errors import TransientError, WorkerError
from workers.pipeline.run import PipelineOptions, SchemaLike, extract_document

log = logging.getLogger(__name__)

ACTOR = "worker"
TIME_LIMIT_CODE = "time_limit"


@dataclass(frozen=True)
class _Work:
    """What a started job needs from the store, loaded in one short read transaction."""

    tenant_id: uuid.UUID
    attempts: int
    content: bytes
    media_type: str
    schema: SchemaLike


class _Skip(Exception):
    """The job is gone or not queued (done elsewhere): nothing to do."""


def _event(
    session: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    action: str,
    outcome: AuditOutcome,
    details: dict[str, object],
    request_id: str | None,
) -> None:
    audit.record_event(
        session,
        actor=ACTOR,
        tenant_id=tenant_id,
        action=action,
        target_type="job",
        target_id=job_id,
        request_id=request_id,
        outcome=outcome,
        details=details,
    )


def _start(
    session_factory: sessionmaker[Session], job_id: uuid.UUID, request_id: str | None, run_deadline_s: float | None
) -> tuple[uuid.UUID, int]:
    with session_factory.begin() as session:
        job = repo.load_job(session, job_id)
        if job is None:
            raise _Skip("unknown job")
        if not repo.transition(session, job, [JobStatus.QUEUED], JobStatus.RUNNING):
            raise _Skip("not queued")
        if run_deadline_s is not None:
            # Past this the run cannot be alive (its worker's hard limit killed it): the reconciler takes over.
            job.deadline = utcnow() + dt.timedelta(seconds=run_deadline_s)
        _event(
            session,
            job.tenant_id,
            job.id,
            "job.running",
            AuditOutcome.SUCCESS,
            {"attempt": job.attempts},
            request_id,
        )
        return job.tenant_id, job.attempts


def _load(
    session_factory: sessionmaker[Session], job_id: uuid.UUID, blob_dir: Path | None, bounds: SchemaBounds
) -> _Work:
    with session_factory.begin() as session:
        job = repo.load_job(session, job_id)
        if job is None:
            raise _Skip("job vanished")
        document = repo.get_document(session, job.tenant_id, job.document_id)
        if document is None:
            raise WorkerError("the job's document is gone", code="document_missing")
        content = repo.read_document_bytes(session, document, blob_dir=blob_dir)
        schema = job_schema(session, job, bounds)
        return _Work(job.tenant_id, job.attempts, content, document.media_type, schema)


def _finish(
    session_factory: sessionmaker[Session],
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    record: dict[str, Any],
    request_id: str | None,
) -> None:
    with session_factory.begin() as session:
        repo.save_result(
            session,
            job_id,
            data=record["data"],
            evidence=record["evidence"],
            # The record's quality block: flags, per-value confidence and its signals, what produced it (model)
            # and from what (shape only).
            flags={
                "items": record["flags"],
                "model": record["model"],
                "document": record["document"],
                "confidence": record["confidence"],
                "rejected_confidence": record["rejected_confidence"],
                "calibration": record["calibration"],
                "signals": record["signals"],
            },
        )
        if not repo.transition(session, job_id, [JobStatus.RUNNING], JobStatus.SUCCEEDED, timings=record["timings"]):
            # Someone else settled the job meanwhile: roll the result back with it.
            raise _Skip("job left running state")
        # The notification commits with the status (a webhook outbox row), so a crash cannot lose it.
        repo.enqueue_job_webhook(session, job_id)
        _event(
            session,
            tenant_id,
            job_id,
            "job.succeeded",
            AuditOutcome.SUCCESS,
            {"chunks": record["document"]["chunks"], "flags": len(record["flags"])},
            request_id,
        )


def _fail(
    session_factory: sessionmaker[Session],
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    attempts: int,
    error: BaseException,
    request_id: str | None,
    retry_backoff_s: float = 0.0,
    time_limit_errors: tuple[type[BaseException], ...] = (),
) -> str:
    """Fail the job (or requeue it when the fault is transient and attempts remain); returns the status."""
    code, message = _error_info(error, time_limit_errors)
    retry = (isinstance(error, TransientError) or is_transient(error)) and may_requeue(attempts)
    with session_factory.begin() as session:
        status = settle_failed_run(
            session,
            job_id,
            tenant_id,
            attempts,
            requeue=retry,
            error_code=code,
            error_message=message,
            actor=ACTOR,
            request_id=request_id,
            # A lease nobody holds: the relay publishes the message once it lapses (backoff).
            delay_s=backoff_s(retry_backoff_s, attempts),
        )
    return status.value if status is not None else "skipped"


def _error_info(error: BaseException, time_limit_errors: tuple[type[BaseException], ...] = ()) -> tuple[str, str]:
    """A code and a message safe to store and show: ours say what failed, never what the document says."""
    if time_limit_errors and isinstance(error, time_limit_errors):
        return TIME_LIMIT_CODE, "the job ran past its time limit"
    if isinstance(error, WorkerError | StoreError):
        return error.code, error.message
    if isinstance(error, SchemaError):
        return error.code, str(error)
    # Anything else is a bug; its text may quote input (e.g. a validation error), so it is not kept.
    return "internal_error", f"unexpected {type(error).__name__}"


def run_job(
    session_factory: sessionmaker[Session],
    job_id: uuid.UUID,
    engine: Engine | Callable[[], Engine],
    options: PipelineOptions,
    limits: LimitsSpec,
    *,
    blob_dir: Path | None = None,
    request_id: str | None = None,
    run_deadline_s: float | None = None,
    retry_backoff_s: float = 0.0,
    time_limit_errors: tuple[type[BaseException], ...] = (),
    time_limit_s: float | None = None,
) -> None:
    """Run one job to succeeded or failed (or requeued, for a transient fault); never raises for the job's own faults.

    `engine` may be a zero-argument factory, called only once the job has really started (lazy model
    loading). Store errors while recording the outcome propagate: the caller's queue retries delivery.
    `run_deadline_s` sets the started job's deadline; a transient fault's requeue waits
    `retry_backoff_s * 2**(attempt-1)`; `time_limit_errors` (the queue's soft time limit) fail the job as
    `time_limit` rather than as a bug (a document that slow will be as slow again). `time_limit_s` is the
    same limit kept by the pipeline itself (no new engine call past it), for workers whose jobs run as
    threads, which no signal can interrupt.
    """
    started = time.perf_counter()
    if time_limit_s is not None:
        options = dataclasses.replace(options, deadline=time.monotonic() + time_limit_s)
    try:
        tenant_id, attempts = _start(session_factory, job_id, request_id, run_deadline_s)
    except _Skip as e:
        log.info("job skipped", extra={"job_id": str(job_id), "reason": str(e)})
        return
    log.info("job started", extra={"job_id": str(job_id), "attempt": attempts})
    try:
        work = _load(session_factory, job_id, blob_dir, options.schema_bounds)
        doc = read_document(work.content, media_type=work.media_type, limits=limits)
        model = engine if isinstance(engine, Engine) else engine()
        record = extract_document(doc, work.schema, model, options)
        _finish(session_factory, job_id, tenant_id, record, request_id)
    except _Skip as e:
        log.info("job skipped", extra={"job_id": str(job_id), "reason": str(e)})
        return
    except Exception as error:  # noqa: BLE001 - every fault of the job ends in a recorded state
        status = _fail(
            session_factory, job_id, tenant_id, attempts, error, request_id, retry_backoff_s, time_limit_errors
        )
        code, _ = _error_info(error, time_limit_errors)
        log.warning(
            "job failed",
            extra={
                "job_id": str(job_id),
                "status": status,
                "error_code": code,
                "exc_type": type(error).__name__,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return
    log.info(
        "job succeeded",
        extra={
            "job_id": str(job_id),
            "chunks": record["document"]["chunks"],
            "flags": len(record["flags"]),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
