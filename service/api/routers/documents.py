"""`/v1/documents`: streamed upload (413 before the whole body is read, 415 by content) and metadata."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from service.api.errors import ApiError
from service.api.models import DocumentOut
from service.api.routers.deps import COMMON_ERRORS, NOT_FOUND, Ctx, RequestId, Tenant, _error
from service.api.uploads import FILE_FIELD, spool_upload
from service.api.usecases import documents as usecases
from service.api.usecases import pages

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=COMMON_ERRORS)

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "A PDF, or UTF-8 plain text / Markdown. The type is judged from the bytes.",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=DocumentOut,
    summary="Upload a document",
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {"model": DocumentOut, "description": "The same bytes were uploaded before: that document."},
        201: {"model": DocumentOut, "description": "Stored."},
        413: _error("Larger than the upload limit (refused before the body is read in full)."),
        415: _error("Not a PDF or UTF-8 text (judged from the bytes), or the body is not multipart."),
    },
)
async def upload_document(
    request: Request, response: Response, ctx: Ctx, actor: Tenant, request_id: RequestId
) -> DocumentOut:
    """Stream the `file` part to a temporary file within the limit, then store it once per content."""
    try:
        async with spool_upload(
            request,
            max_bytes=ctx.settings.max_document_bytes,
            tmp_dir=ctx.tmp_dir,
            on_bytes=ctx.metrics.upload_bytes.inc,
        ) as upload:
            content = await run_in_threadpool(upload.read)
            filename = upload.filename
    except ApiError as e:
        ctx.metrics.uploads_refused.labels(e.code).inc()  # counted once the temporary file is gone
        await run_in_threadpool(usecases.audit_refused_upload, ctx, actor, request_id, e)
        raise
    document, created = await run_in_threadpool(usecases.upload_document, ctx, actor, request_id, content, filename)
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/documents/{document.id}"
    return document


@router.get("/{document_id}", response_model=DocumentOut, summary="A document's metadata", responses=NOT_FOUND)
def read_document(document_id: uuid.UUID, ctx: Ctx, actor: Tenant, request_id: RequestId) -> DocumentOut:
    """Metadata only: the bytes never leave through the API."""
    return usecases.read_document(ctx, actor, request_id, document_id)


_PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
_PAGE_HEADERS = {
    "X-Page-Width-Pt": {"description": "The page's width as displayed, in points.", "schema": {"type": "string"}},
    "X-Page-Height-Pt": {"description": "The page's height as displayed, in points.", "schema": {"type": "string"}},
}


@router.get(
    "/{document_id}/pages/{page}",
    response_class=Response,
    summary="One page of a PDF as a PNG image",
    responses={
        200: {**_PNG, "description": "At most ABSTRACTOR_PAGE_IMAGE_MAX_SIDE_PX a side.", "headers": _PAGE_HEADERS},
        404: _error("Unknown document or page, or another tenant's document (indistinguishable)."),
    },
)
def read_page_image(
    document_id: uuid.UUID,
    ctx: Ctx,
    actor: Tenant,
    request_id: RequestId,
    page: int = Path(ge=1, le=100_000, description="1-based page number."),
) -> Response:
    """Evidence boxes are in points on the page as displayed: scale them by the image's width / `X-Page-Width-Pt`."""
    image = pages.read_page_image(ctx, actor, request_id, document_id, page)
    headers = {
        "X-Page-Width-Pt": f"{image.width_pt:.2f}",
        "X-Page-Height-Pt": f"{image.height_pt:.2f}",
        "Cache-Control": "private, no-store",
    }
    return Response(content=image.png, media_type="image/png", headers=headers)
