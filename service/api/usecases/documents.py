"""Documents: an upload stored once per tenant and content (its type judged from its bytes), and its metadata."""

from __future__ import annotations

import logging
import uuid

from service.api.context import Actor, ApiContext
from service.api.models import DocumentOut
from service.api.usecases.common import not_found, record, record_refusal
from service.store import repositories as repo
from service.store.models import AuditOutcome, Document
from workers.documents.errors import DocumentError
from workers.documents.sniff import SNIFF_BYTES, sniff_media_type

log = logging.getLogger(__name__)


def _document_out(document: Document) -> DocumentOut:
    return DocumentOut(
        id=document.id,
        sha256=document.sha256,
        size_bytes=document.size_bytes,
        media_type=document.media_type,
        page_count=document.page_count,
        created_at=document.created_at,
    )


def audit_refused_upload(ctx: ApiContext, actor: Actor, request_id: str, error: BaseException) -> None:
    """An upload refused before it reached the store (too large, wrong type) is still a submission."""
    record_refusal(ctx, actor, request_id, "document.upload", "document", None, error)


def upload_document(
    ctx: ApiContext, actor: Actor, request_id: str, content: bytes, filename: str | None
) -> tuple[DocumentOut, bool]:
    """Store an uploaded document once per tenant and content; its type is judged from its bytes."""
    try:
        media_type = sniff_media_type(content[:SNIFF_BYTES], filename)
    except DocumentError as e:
        audit_refused_upload(ctx, actor, request_id, e)
        raise
    with ctx.session_factory.begin() as session:
        document, created = repo.add_document(
            session, actor.tenant(), content, media_type=media_type, blob_dir=ctx.settings.blob_dir
        )
        record(
            session,
            actor,
            request_id,
            "document.upload",
            "document",
            document.id,
            AuditOutcome.SUCCESS,
            {"created": created, "size_bytes": document.size_bytes, "media_type": media_type},
        )
        out = _document_out(document)
    log.info("document stored", extra={"document_id": str(out.id), "new": created, "size_bytes": out.size_bytes})
    return out, created


def read_document(ctx: ApiContext, actor: Actor, request_id: str, document_id: uuid.UUID) -> DocumentOut:
    """A document's metadata; the read is audited whether it is found or not."""
    with ctx.session_factory.begin() as session:
        document = repo.get_document(session, actor.tenant(), document_id)
        outcome = AuditOutcome.SUCCESS if document is not None else AuditOutcome.DENIED
        details = None if document is not None else {"error_code": "not_found", "status": 404}
        record(session, actor, request_id, "document.read", "document", document_id, outcome, details)
        out = None if document is None else _document_out(document)
    if out is None:
        raise not_found("document")
    return out
