"""Reviews: the queue, a job's review (both versions of its record, every decision), and adding a decision.

Each decision is one appended row, written with its audit event in one transaction; the reviewer is
the calling API key (its id and name). A corrected value must leave the record valid against the
job's schema, and is grounded again in a child process (not found: kept, and flagged).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.api.context import Actor, ApiContext
from service.api.errors import UnprocessableError
from service.api.models import (
    RecordOut,
    ReviewDecisionIn,
    ReviewDecisionOut,
    Reviewer,
    ReviewFieldOut,
    ReviewOut,
    ReviewQueue,
    ReviewQueueItem,
)
from service.api.usecases.common import not_found, record, record_refusal
from service.jobs.resolve import job_schema
from service.reviews.current import Decision, apply_decisions, field_confidences, latest_by_field, review_state
from service.reviews.records import detach, reviewed
from service.store import repositories as repo
from service.store.models import AuditOutcome, Job, JobStatus, ReviewAction

log = logging.getLogger(__name__)


def decision_out(decision: Decision) -> ReviewDecisionOut:
    """The API shape of a stored decision."""
    return ReviewDecisionOut(
        id=decision.id,
        field=decision.field,
        action=decision.action,  # type: ignore[arg-type]
        value=decision.value,
        evidence=None if decision.evidence is None else dict(decision.evidence),
        flags=None if decision.flags is None else list(decision.flags),
        reviewer=Reviewer(key_id=decision.reviewer_key_id, name=decision.reviewer_name),
        created_at=decision.created_at,
    )


def _fields(json_schema: dict[str, Any], data: dict[str, Any]) -> list[str]:
    return list((json_schema.get("properties") or {}).keys()) or list(data)


def list_queue(
    ctx: ApiContext,
    actor: Actor,
    request_id: str,
    *,
    schema_name: str | None,
    batch_id: uuid.UUID | None,
    limit: int,
) -> ReviewQueue:
    """Succeeded jobs not yet reviewed, lowest field confidence first; the read is audited (ids only)."""
    tenant_id = actor.tenant()
    with ctx.session_factory.begin() as session:
        if batch_id is not None and repo.get_batch(session, tenant_id, batch_id) is None:
            record(session, actor, request_id, "review.queue", "batch", batch_id, AuditOutcome.DENIED, {"status": 404})
            items = None
        else:
            items = []
            for job, result, last in repo.reviewable_jobs(
                session, tenant_id, schema_name=schema_name, batch_id=batch_id
            ):
                if last is ReviewAction.FINISH:
                    continue
                scores = list(((result.flags or {}).get("confidence") or {}).values())
                items.append(
                    ReviewQueueItem(
                        job_id=job.id,
                        document_id=job.document_id,
                        schema_name=job.schema_name,
                        schema_version=job.schema_version,
                        state="unreviewed" if last is None else "in_review",
                        lowest_confidence=min(scores) if scores else None,
                        created_at=job.created_at,
                    )
                )
            items.sort(key=lambda i: (i.lowest_confidence is None, i.lowest_confidence or 0.0, i.created_at))
            items = items[:limit]
            record(
                session,
                actor,
                request_id,
                "review.queue",
                "review",
                None,
                AuditOutcome.SUCCESS,
                {"items": len(items), "batch_id": None if batch_id is None else str(batch_id)},
            )
    if items is None:
        raise not_found("batch")
    return ReviewQueue(items=items)


def _review_out(session: Session, job: Job) -> ReviewOut:
    result = repo.get_result(session, job.tenant_id, job.id)
    if result is None:
        raise UnprocessableError("only a succeeded job's record can be reviewed", code="not_reviewable")
    document = repo.get_document(session, job.tenant_id, job.document_id)
    json_schema = job_schema(session, job).json_schema()
    view = reviewed(result, repo.list_review_decisions(session, job.tenant_id, job.id), json_schema)
    model, current = view["model"], view["current"]
    latest = latest_by_field(view["decisions"])
    names = _fields(json_schema, model["data"])
    confidences = field_confidences(model["confidence"], names)
    fields = [
        ReviewFieldOut(
            name=name,
            confidence=confidences[name],
            model_value=model["data"].get(name),
            value=current["data"].get(name),
            decision=latest[name].action if name in latest else None,  # type: ignore[arg-type]
        )
        for name in names
    ]
    fields.sort(key=lambda f: (f.confidence is None, f.confidence if f.confidence is not None else 0.0))
    return ReviewOut(
        job_id=job.id,
        document_id=job.document_id,
        media_type="" if document is None else document.media_type,
        schema_name=job.schema_name,
        schema_version=job.schema_version,
        state=view["state"],
        fields=fields,
        current=RecordOut(**current),
        model=RecordOut(**model),
        decisions=[decision_out(d) for d in view["decisions"]],
        reviewers=[Reviewer(**r) for r in view["reviewers"]],
    )


def read_review(ctx: ApiContext, actor: Actor, request_id: str, job_id: uuid.UUID) -> ReviewOut:
    """A job's review; the read (of both versions of the record) is audited, found or not."""
    tenant_id = actor.tenant()
    try:
        with ctx.session_factory.begin() as session:
            job = repo.get_job(session, tenant_id, job_id)
            if job is None:
                raise not_found("job")
            out = _review_out(session, job)
            record(session, actor, request_id, "review.read", "job", job.id, AuditOutcome.SUCCESS, {"state": out.state})
    except Exception as e:
        record_refusal(ctx, actor, request_id, "review.read", "job", job_id, e)
        raise
    return out


def _reviewer(session: Session, actor: Actor) -> tuple[uuid.UUID | None, str]:
    """The calling key's id and name (the audit actor when it is not a key)."""
    prefix = "api_key:"
    if actor.name.startswith(prefix):
        key_id = uuid.UUID(actor.name[len(prefix) :])
        key = repo.get_api_key(session, actor.tenant(), key_id)
        return key_id, key.name if key is not None else actor.name
    return None, actor.name


def _check(body: ReviewDecisionIn, fields: list[str]) -> None:
    if body.action == "finish":
        if body.field is not None:
            raise UnprocessableError("finish takes no field", code="invalid_decision", details={"reason": "field"})
        return
    if body.field is None or body.field not in fields:
        raise UnprocessableError("no such field in the job's schema", code="unknown_field")
    if body.action == "correct" and body.value is None:
        raise UnprocessableError(
            "a correction needs a value (reject a value that is not stated)",
            code="invalid_decision",
            details={"reason": "value"},
        )
    if body.action != "correct" and body.value is not None:
        raise UnprocessableError(
            "only a correction carries a value", code="invalid_decision", details={"reason": "value"}
        )


def decide(ctx: ApiContext, actor: Actor, request_id: str, job_id: uuid.UUID, body: ReviewDecisionIn) -> ReviewOut:
    """Append one decision and its audit event (one transaction); the review as it now stands."""
    tenant_id = actor.tenant()
    try:
        with ctx.session_factory.begin() as session:
            job = repo.get_job(session, tenant_id, job_id)
            if job is None:
                raise not_found("job")
            result = repo.get_result(session, tenant_id, job.id)
            if job.status is not JobStatus.SUCCEEDED or result is None:
                raise UnprocessableError("only a succeeded job's record can be reviewed", code="not_reviewable")
            spec = job_schema(session, job)
            json_schema = spec.json_schema()
            _check(body, _fields(json_schema, result.data))
            evidence: dict[str, Any] | None = None
            flags: list[dict[str, Any]] | None = None
            if body.action == "correct":
                assert body.field is not None
                decisions = detach(repo.list_review_decisions(session, tenant_id, job.id))
                candidate = apply_decisions(result.data, decisions, json_schema)
                candidate[body.field] = body.value
                try:
                    spec.model.model_validate(candidate)
                except (ValidationError, ValueError) as e:
                    raise UnprocessableError(
                        "the corrected value does not satisfy the schema",
                        code="invalid_correction",
                        details={"field": body.field},
                    ) from e
                document = repo.get_document(session, tenant_id, job.document_id)
                assert document is not None
                data = repo.read_document_bytes(session, document, blob_dir=ctx.settings.blob_dir)
                # Imported when a correction is grounded: importing the API starts no child machinery.
                from service.reviews.grounding import ground_correction

                grounded = ground_correction(ctx.settings, data, document.media_type, body.field, body.value)
                evidence, flags = grounded.evidence, grounded.flags
            key_id, name = _reviewer(session, actor)
            row = repo.add_review_decision(
                session,
                tenant_id=tenant_id,
                job_id=job.id,
                field=body.field,
                action=ReviewAction(body.action),
                value=body.value if body.action == "correct" else None,
                evidence=evidence,
                flags=flags,
                reviewer_key_id=key_id,
                reviewer_name=name,
            )
            out = _review_out(session, job)
            record(
                session,
                actor,
                request_id,
                f"review.{body.action}",
                "job",
                job.id,
                AuditOutcome.SUCCESS,
                {
                    "decision_id": row.id,
                    "field": body.field,
                    "grounded": None if flags is None else not flags,
                    "state": out.state,
                },
            )
    except Exception as e:
        record_refusal(ctx, actor, request_id, f"review.{body.action}", "job", job_id, e)
        raise
    log.info("review decision", extra={"job_id": str(job_id), "action": body.action, "state": out.state})
    return out


def state_of(session: Session, job: Job) -> str:
    """A job's review state (for the extraction read)."""
    return review_state(detach(repo.list_review_decisions(session, job.tenant_id, job.id)))
