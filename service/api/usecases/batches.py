"""Batches over uploaded documents: one item per distinct content with deduplicated jobs, progress, exports."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from schemas.errors import UnknownSchemaError
from service.api.context import Actor, ApiContext
from service.api.errors import NOT_FOUND_MESSAGE, NotFoundError, UnprocessableError
from service.api.models import BatchIn, BatchOut
from service.api.usecases.common import check_webhook, not_found, record, record_refusal
from service.batches.export import iter_export_rows
from service.batches.progress import batch_counts
from service.jobs.resolve import resolve_schema
from service.jobs.submit import submit_batch_item
from service.store import repositories as repo
from service.store.models import AuditOutcome, Batch, Document

log = logging.getLogger(__name__)


def _batch_out(batch: Batch, state: dict[str, int], new_jobs: int | None = None) -> BatchOut:
    return BatchOut(
        id=batch.id,
        name=batch.source,
        schema_name=batch.schema_name,
        schema_version=batch.schema_version,
        model=batch.model,
        created_at=batch.created_at,
        updated_at=batch.updated_at,
        documents=state["total"],
        counts={k: v for k, v in state.items() if k not in ("total", "done")},
        done=state["done"] >= state["total"],
        new_jobs=new_jobs,
    )


def submit_batch(ctx: ApiContext, actor: Actor, request_id: str, body: BatchIn) -> BatchOut:
    """A new batch over uploaded documents: one item per distinct content, jobs deduplicated, one transaction."""
    tenant_id = actor.tenant()
    try:
        webhook_url = check_webhook(ctx, body.webhook_url)
        with ctx.session_factory.begin() as session:
            documents: dict[str, Document] = {}
            copies: dict[str, int] = {}
            for document_id in body.document_ids:
                document = repo.get_document(session, tenant_id, document_id)
                if document is None:
                    raise NotFoundError(NOT_FOUND_MESSAGE, details={"resource": "document", "id": str(document_id)})
                documents.setdefault(document.sha256, document)
                copies[document.sha256] = copies.get(document.sha256, 0) + 1
            schema = resolve_schema(session, tenant_id, body.schema_name, body.schema_version)
            batch = repo.create_batch(
                session,
                tenant_id,
                source=body.name or f"api:{request_id}",
                schema_name=schema.name,
                schema_version=schema.version,
                model=ctx.model,
                backend=ctx.backend,
                webhook_url=webhook_url,
            )
            new_jobs = 0
            for sha256, document in documents.items():
                _, created = submit_batch_item(
                    session,
                    batch,
                    sha256=sha256,
                    name=str(document.id),
                    document_id=document.id,
                    copies=copies[sha256],
                    user_schema=schema.user,
                )
                new_jobs += int(created)
            record(
                session,
                actor,
                request_id,
                "batch.submit",
                "batch",
                batch.id,
                AuditOutcome.SUCCESS,
                {"documents": len(documents), "new_jobs": new_jobs, "schema_ref": schema.ref},
            )
            session.flush()
            out = _batch_out(batch, batch_counts(session, batch.id), new_jobs)
    except (NotFoundError, UnprocessableError, UnknownSchemaError) as e:
        record_refusal(ctx, actor, request_id, "batch.submit", "batch", None, e)
        raise
    if new_jobs and ctx.background is not None:
        ctx.background.wake()
    log.info("batch submitted", extra={"batch_id": str(out.id), "documents": out.documents, "new_jobs": new_jobs})
    return out


def read_batch(ctx: ApiContext, actor: Actor, request_id: str, batch_id: uuid.UUID) -> BatchOut:
    """A batch's progress; unknown and foreign ids are the same 404."""
    with ctx.session_factory.begin() as session:
        batch = repo.get_batch(session, actor.tenant(), batch_id)
        outcome = AuditOutcome.SUCCESS if batch is not None else AuditOutcome.DENIED
        details = None if batch is not None else {"error_code": "not_found", "status": 404}
        record(session, actor, request_id, "batch.read", "batch", batch_id, outcome, details)
        out = None if batch is None else _batch_out(batch, batch_counts(session, batch.id))
    if out is None:
        raise not_found("batch")
    return out


def batch_export_rows(ctx: ApiContext, actor: Actor, request_id: str, batch_id: uuid.UUID, fmt: str) -> list[Any]:
    """Every item's export row (records included), after an audited ownership check."""
    with ctx.session_factory.begin() as session:
        batch = repo.get_batch(session, actor.tenant(), batch_id)
        outcome = AuditOutcome.SUCCESS if batch is not None else AuditOutcome.DENIED
        details: dict[str, object] = (
            {"format": fmt} if batch is not None else {"error_code": "not_found", "status": 404}
        )
        record(session, actor, request_id, "batch.export", "batch", batch_id, outcome, details)
    if batch is None:
        raise not_found("batch")
    return list(iter_export_rows(ctx.session_factory, batch_id))
