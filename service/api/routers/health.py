"""Probes and metrics: no credentials (keep them on the internal network)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.api.models import Health, Readiness
from service.api.routers.deps import Ctx
from service.api.usecases import health as usecases

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz() -> Health:
    """The process answers; says nothing about its dependencies (that is /readyz)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness",
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
)
def readyz(ctx: Ctx) -> JSONResponse:
    """Database reachable and migrated; broker reachable when configured; embedded worker alive."""
    ready = usecases.readiness(ctx)
    return JSONResponse(ready.model_dump(), status_code=200 if ready.status == "ready" else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Exposition format."}},
)
async def metrics(ctx: Ctx) -> PlainTextResponse:
    """Requests, latencies, upload bytes, jobs by status (read from the store at scrape time)."""
    body = await run_in_threadpool(generate_latest, ctx.metrics.registry)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
