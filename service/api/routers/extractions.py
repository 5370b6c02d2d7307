"""`/v1/extractions`: queue a job (202), then poll its status and record."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from service.api.models import ExtractionIn, ExtractionOut
from service.api.routers.deps import COMMON_ERRORS, NOT_FOUND, Ctx, RequestId, Tenant
from service.api.usecases import extractions as usecases

router = APIRouter(prefix="/v1/extractions", tags=["extractions"], responses=COMMON_ERRORS)


@router.post(
    "",
    status_code=202,
    response_model=ExtractionOut,
    summary="Extract a document with a schema",
    responses={
        **NOT_FOUND,
        200: {"model": ExtractionOut, "description": "This document, schema and model already have a job: that job."},
        202: {"model": ExtractionOut, "description": "Queued."},
    },
)
def submit_extraction(
    body: ExtractionIn, response: Response, ctx: Ctx, actor: Tenant, request_id: RequestId
) -> ExtractionOut:
    """The same document, schema and model return the existing job instead of a new one."""
    job, created = usecases.submit_extraction(ctx, actor, request_id, body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/extractions/{job.id}"
    return job


@router.get("/{job_id}", response_model=ExtractionOut, summary="A job's status and record", responses=NOT_FOUND)
def read_extraction(job_id: uuid.UUID, ctx: Ctx, actor: Tenant, request_id: RequestId) -> ExtractionOut:
    """`status` first; `result` (data, evidence, flags) once it has succeeded, `error` once it has failed."""
    return usecases.read_extraction(ctx, actor, request_id, job_id)
