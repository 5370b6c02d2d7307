"""`/v1/reviews`: the review queue, a job's review, and a reviewer's decisions (the `/review` page's API)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.api.models import SCHEMA_NAME_PATTERN, ReviewDecisionIn, ReviewOut, ReviewQueue
from service.api.routers.deps import COMMON_ERRORS, NOT_FOUND, Ctx, RequestId, Tenant
from service.api.usecases import reviews as usecases

router = APIRouter(prefix="/v1/reviews", tags=["reviews"], responses=COMMON_ERRORS)


@router.get("", response_model=ReviewQueue, summary="Jobs needing review, lowest confidence first", responses=NOT_FOUND)
def review_queue(
    ctx: Ctx,
    actor: Tenant,
    request_id: RequestId,
    schema_name: Annotated[str | None, Query(pattern=SCHEMA_NAME_PATTERN)] = None,
    batch_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReviewQueue:
    """Succeeded jobs whose review is not finished, by their lowest field confidence; 404 for an unknown batch."""
    return usecases.list_queue(ctx, actor, request_id, schema_name=schema_name, batch_id=batch_id, limit=limit)


@router.get("/{job_id}", response_model=ReviewOut, summary="A job's review and its decisions", responses=NOT_FOUND)
def read_review(job_id: uuid.UUID, ctx: Ctx, actor: Tenant, request_id: RequestId) -> ReviewOut:
    """Fields by confidence, the model's record and the current one, and every decision with its reviewer."""
    return usecases.read_review(ctx, actor, request_id, job_id)


@router.post(
    "/{job_id}",
    status_code=201,
    response_model=ReviewOut,
    summary="Add a reviewer's decision",
    responses={**NOT_FOUND, 201: {"model": ReviewOut, "description": "Recorded; the review as it now stands."}},
)
def add_decision(
    job_id: uuid.UUID, body: ReviewDecisionIn, response: Response, ctx: Ctx, actor: Tenant, request_id: RequestId
) -> ReviewOut:
    """Accept, correct (the value must satisfy the schema; it is grounded again) or reject a field, or finish."""
    out = usecases.decide(ctx, actor, request_id, job_id, body)
    response.headers["Location"] = f"/v1/reviews/{job_id}"
    return out
