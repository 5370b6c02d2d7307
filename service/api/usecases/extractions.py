"""Extractions: queue a job for a document and a schema (or find the one already made), and read it back."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from schemas.errors import UnknownSchemaError
from service.api.context import Actor, ApiContext
from service.api.errors import NotFoundError, UnprocessableError
from service.api.messages import job_error_message, public_code
from service.api.models import ErrorInfo, ExtractionIn, ExtractionOut, RecordOut
from service.api.usecases.common import check_webhook, not_found, record, record_refusal
from service.jobs.identity import ModelRef
from service.jobs.resolve import job_schema, resolve_schema
from service.jobs.submit import SubmittedBy, submit_job
from service.reviews.records import reviewed
from service.store import repositories as repo
from service.store.models import AuditOutcome, Job, Result

log = logging.getLogger(__name__)


def _extraction_out(session: Session, job: Job, result: Result | None) -> ExtractionOut:
    record_out = model_out = None
    state = None
    if result is not None:
        view = reviewed(
            result, repo.list_review_decisions(session, job.tenant_id, job.id), job_schema(session, job).json_schema()
        )
        record_out, model_out, state = RecordOut(**view["current"]), RecordOut(**view["model"]), view["state"]
    error = None
    if job.error_code is not None:
        error = ErrorInfo(code=public_code(job.error_code), message=job_error_message(job.error_code))
    return ExtractionOut(
        id=job.id,
        status=job.status.value,
        document_id=job.document_id,
        schema_name=job.schema_name,
        schema_version=job.schema_version,
        model=job.model,
        backend=job.backend,
        attempts=job.attempts,
        created_at=job.created_at,
        updated_at=job.updated_at,
        error=error,
        timings=job.timings,
        result=record_out,
        model_result=model_out,
        review_state=state,
    )


def submit_extraction(ctx: ApiContext, actor: Actor, request_id: str, body: ExtractionIn) -> tuple[ExtractionOut, bool]:
    """Queue a job (job row + outbox row + audit event, one transaction), or return the existing one."""
    tenant_id = actor.tenant()
    try:
        webhook_url = check_webhook(ctx, body.webhook_url)
        with ctx.session_factory.begin() as session:
            if repo.get_document(session, tenant_id, body.document_id) is None:
                raise not_found("document")
            schema = resolve_schema(session, tenant_id, body.schema_name, body.schema_version)
            job, created = submit_job(
                session,
                tenant_id,
                body.document_id,
                schema,
                ModelRef(ctx.model, ctx.backend),
                webhook_url=webhook_url,
                by=SubmittedBy(actor.name, request_id),
            )
            out = _extraction_out(session, job, repo.get_result(session, tenant_id, job.id))
    except (NotFoundError, UnprocessableError, UnknownSchemaError) as e:
        record_refusal(ctx, actor, request_id, "extraction.submit", "document", body.document_id, e)
        raise
    if created and ctx.background is not None:
        ctx.background.wake()
    log.info("extraction submitted", extra={"job_id": str(out.id), "new": created})
    return out, created


def read_extraction(ctx: ApiContext, actor: Actor, request_id: str, job_id: uuid.UUID) -> ExtractionOut:
    """A job's status and, once succeeded, its record; the read (and whether a record was read) is audited."""
    tenant_id = actor.tenant()
    with ctx.session_factory.begin() as session:
        job = repo.get_job(session, tenant_id, job_id)
        if job is None:
            record(
                session,
                actor,
                request_id,
                "extraction.read",
                "job",
                job_id,
                AuditOutcome.DENIED,
                {"error_code": "not_found", "status": 404},
            )
            out = None
        else:
            result = repo.get_result(session, tenant_id, job.id)
            record(
                session,
                actor,
                request_id,
                "extraction.read",
                "job",
                job.id,
                AuditOutcome.SUCCESS,
                {"status": job.status.value, "result_id": None if result is None else result.id},
            )
            out = _extraction_out(session, job, result)
    if out is None:
        raise not_found("extraction")
    return out
