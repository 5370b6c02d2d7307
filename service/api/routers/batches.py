"""`/v1/batches`: extract many uploaded documents with one schema, follow progress, export the results."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from service.api.errors import UnprocessableError
from service.api.models import BatchIn, BatchOut
from service.api.routers.deps import COMMON_ERRORS, NOT_FOUND, Ctx, RequestId, Tenant, _error
from service.api.usecases import batches as usecases
from service.batches import export

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=COMMON_ERRORS)

_MEDIA = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


@router.post("", status_code=201, response_model=BatchOut, summary="Extract many documents", responses=NOT_FOUND)
def submit_batch(body: BatchIn, response: Response, ctx: Ctx, actor: Tenant, request_id: RequestId) -> BatchOut:
    """Upload the documents first (`POST /v1/documents`); a document already extracted with this schema and
    model reuses its job, so resubmitting an interrupted batch redoes nothing that finished."""
    out = usecases.submit_batch(ctx, actor, request_id, body)
    response.headers["Location"] = f"/v1/batches/{out.id}"
    return out


@router.get("/{batch_id}", response_model=BatchOut, summary="A batch's progress", responses=NOT_FOUND)
def read_batch(batch_id: uuid.UUID, ctx: Ctx, actor: Tenant, request_id: RequestId) -> BatchOut:
    """Items per status; `done` once every item has succeeded or failed."""
    return usecases.read_batch(ctx, actor, request_id, batch_id)


@router.get(
    "/{batch_id}/results",
    summary="Export a batch's results",
    responses={
        **NOT_FOUND,
        200: {
            "description": "One row per distinct document (JSONL: the full record; CSV/Parquet: data fields flat).",
            "content": {media: {} for media in _MEDIA.values()},
        },
        422: _error("Unknown format, or Parquet without pyarrow installed on the server."),
    },
)
def export_batch(
    batch_id: uuid.UUID,
    ctx: Ctx,
    actor: Tenant,
    request_id: RequestId,
    fmt: Annotated[Literal["jsonl", "csv", "parquet"], Query(alias="format")] = "jsonl",
) -> Response:
    """Rows in manifest order; documents still running appear with their status and no record."""
    if fmt == "parquet" and not export.parquet_available():
        raise UnprocessableError("Parquet export needs pyarrow on the server", code="parquet_unavailable")
    rows = usecases.batch_export_rows(ctx, actor, request_id, batch_id, fmt)
    filename = f"batch-{batch_id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "jsonl":
        return StreamingResponse(export.jsonl_lines(iter(rows)), media_type=_MEDIA[fmt], headers=headers)
    if fmt == "csv":
        return StreamingResponse(export.csv_text(rows), media_type=_MEDIA[fmt], headers=headers)
    return Response(_parquet_bytes(rows), media_type=_MEDIA[fmt], headers=headers)


def _parquet_bytes(rows: list[dict[str, object]]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.parquet"
        export.write_parquet(rows, path)
        return path.read_bytes()
