"""Page images: one page of a tenant's PDF drawn to PNG for a reviewer, audited as a read of the document."""

from __future__ import annotations

import logging
import uuid

from service.api.context import Actor, ApiContext
from service.api.errors import UnprocessableError
from service.api.page_cache import CachedPage, PageCache
from service.api.usecases.common import not_found, record, record_refusal
from service.store import repositories as repo
from service.store.models import AuditOutcome
from workers.documents.sniff import PDF

log = logging.getLogger(__name__)

ACTION = "document.page_read"


def page_cache(ctx: ApiContext) -> PageCache:
    """The page-image cache of this app's data folder."""
    return PageCache(ctx.settings.data_dir / "cache" / "pages", ctx.settings.page_image_cache_mb * 1024 * 1024)


def read_page_image(ctx: ApiContext, actor: Actor, request_id: str, document_id: uuid.UUID, page: int) -> CachedPage:
    """Page `page` of the document as PNG; found or not, the read is audited in the transaction that made it."""
    tenant_id = actor.tenant()
    settings = ctx.settings
    side = settings.page_image_max_side_px
    cache = page_cache(ctx)
    try:
        with ctx.session_factory.begin() as session:
            document = repo.get_document(session, tenant_id, document_id)
            if document is None:
                raise not_found("document")
            if document.media_type != PDF:
                raise UnprocessableError(
                    "only PDF documents have page images", code="no_page_images", details={"resource": "document"}
                )
            image = cache.get(document.id, page, side)
            cached = image is not None
            if image is None:
                image = _render(ctx, repo.read_document_bytes(session, document, blob_dir=settings.blob_dir), page)
                cache.put(document.id, page, side, image)
            record(
                session,
                actor,
                request_id,
                ACTION,
                "document",
                document.id,
                AuditOutcome.SUCCESS,
                {"page": page, "cached": cached},
            )
    except Exception as e:
        record_refusal(ctx, actor, request_id, ACTION, "document", document_id, e)
        raise
    log.info("page image read", extra={"document_id": str(document_id), "page": page, "cached": cached})
    return image


def _render(ctx: ApiContext, data: bytes, page: int) -> CachedPage:
    """Draw the page in a sandboxed child (the parser never runs in the API's process)."""
    # Imported when a page is drawn: importing the API loads no parser code.
    from workers.documents.render import render_png

    settings = ctx.settings
    drawn = render_png(
        data,
        page,
        max_side_px=settings.page_image_max_side_px,
        max_pixels=settings.ocr_max_pixels,
        timeout_s=settings.parse_timeout_s,
        memory_mb=settings.parse_memory_mb,
    )
    if drawn.png is None:
        raise not_found("page")
    return CachedPage(drawn.png, drawn.width_pt, drawn.height_pt)
