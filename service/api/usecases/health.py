"""Health: readiness (store migrated, broker reachable, embedded worker alive) and the job-count gauge."""

from __future__ import annotations

import logging

import redis
from sqlalchemy.exc import SQLAlchemyError

from service.api.context import ApiContext
from service.api.models import Readiness
from service.store import repositories as repo
from service.store.session import head_revision, stamped_revision

log = logging.getLogger(__name__)


def job_counts(ctx: ApiContext) -> dict[str, int] | None:
    """Jobs per status across tenants, for the metrics gauge; None when the store cannot answer."""
    try:
        with ctx.session_factory() as session:
            by_status = repo.count_jobs_by_status(session)
    except SQLAlchemyError as e:
        log.warning("job counts unavailable", extra={"exc_type": type(e).__name__})
        return None
    return {status.value: n for status, n in by_status.items()}


def readiness(ctx: ApiContext) -> Readiness:
    """Database reachable and migrated, broker reachable (when one is configured), worker alive (embedded)."""
    checks: dict[str, str] = {}
    try:
        with ctx.session_factory() as session:
            revision = stamped_revision(session)
        checks["database"] = "ok" if revision == head_revision() else "error"
    except SQLAlchemyError as e:
        log.warning("readiness: database unreachable", extra={"exc_type": type(e).__name__})
        checks["database"] = "error"
    if ctx.settings.broker_url is None:
        checks["broker"] = "skipped"
    else:
        try:
            client = redis.Redis.from_url(ctx.settings.broker_url, socket_connect_timeout=1.0, socket_timeout=1.0)
            try:
                client.ping()
            finally:
                client.close()
            checks["broker"] = "ok"
        except redis.RedisError as e:
            log.warning("readiness: broker unreachable", extra={"exc_type": type(e).__name__})
            checks["broker"] = "error"
    if ctx.background is not None:
        checks["worker"] = "ok" if ctx.background.alive() else "error"
    ready = all(v in ("ok", "skipped") for v in checks.values())
    return Readiness(status="ready" if ready else "not_ready", checks=checks)
