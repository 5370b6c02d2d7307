"""`create_app`: the FastAPI application, wired from settings (or from parts, in tests)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.api.context import ApiContext, Background
from service.api.errors import install_error_handlers
from service.api.guard import HttpGuard
from service.api.observability import Metrics, RequestContextMiddleware, quiet_content_loggers
from service.api.routers import admin, batches, documents, extractions, health, review_page, reviews, schemas
from service.api.throttle import AuthThrottle
from service.api.usecases.auth import flush_auth_failures
from service.api.usecases.health import job_counts
from service.config import Settings
from service.jobs.identity import model_ref
from service.store.session import make_engine, make_session_factory
from service.webhooks import WebhookDeliverer

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"


def create_app(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    background: Background | None = None,
    model: tuple[str, str] | None = None,
) -> FastAPI:
    """The API over `settings.database_url` (migrated beforehand: the app never creates tables).

    `background` is the embedded worker, started and stopped with the app; `model` overrides the
    (model, backend) pair that jobs are keyed by, for an injected engine.
    """
    quiet_content_loggers()
    owns_engine = session_factory is None
    if session_factory is None:
        # hide_parameters: even if someone turns SQL logging on, parameters (document bytes) stay out.
        session_factory = make_session_factory(make_engine(settings.database_url, hide_parameters=True))
    model_name, backend = model or model_ref(settings)
    ctx = ApiContext(
        settings=settings,
        session_factory=session_factory,
        metrics=Metrics(),
        model=model_name,
        backend=backend,
        tmp_dir=settings.data_dir / "tmp" / "uploads",
        auth_throttle=AuthThrottle(settings.auth_failure_limit, settings.auth_failure_window_s),
        background=background,
    )
    ctx.metrics.watch_job_counts(lambda: job_counts(ctx))

    # Embedded mode delivers its own webhooks; elsewhere the deliverer runs beside the outbox relay.
    deliverer = WebhookDeliverer.from_settings(session_factory, settings) if background is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background is not None:
            background.start()
        if deliverer is not None:
            deliverer.start()
        try:
            yield
        finally:
            flush_auth_failures(ctx, everything=True)  # the open windows' counts, audited before we go
            if deliverer is not None:
                deliverer.stop()
            if background is not None:
                background.stop()
            if owns_engine and session_factory is not None:
                bind = session_factory.kw.get("bind")
                if bind is not None:
                    bind.dispose()

    app = FastAPI(
        title="Abstractor",
        version=API_VERSION,
        description="Validated, source-grounded records from clinical notes, contracts and PDFs.",
        lifespan=lifespan,
        # No redirect from /v1/x/ to /v1/x: Starlette builds its Location from the Host header.
        redirect_slashes=False,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    # Outermost last: request ids and the access log first, then the Host, size and pace checks.
    app.add_middleware(
        HttpGuard,
        allowed_hosts=settings.allowed_hosts,
        max_body_bytes=settings.max_json_body_bytes,
        body_timeout_s=settings.http_body_timeout_s,
        body_idle_timeout_s=settings.http_body_idle_timeout_s,
    )
    app.add_middleware(RequestContextMiddleware, metrics=ctx.metrics)
    for router in (
        documents.router,
        extractions.router,
        reviews.router,
        batches.router,
        schemas.router,
        admin.router,
        health.router,
        review_page.router,
    ):
        app.include_router(router)
    return app
