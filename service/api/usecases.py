"""The API's use cases: each owns one transaction and writes its audit event inside it.

Routers stay thin and call these; persistence goes through `service.store.repositories`. A refused
action (unknown or foreign id, bad input) is audited too, in its own transaction, and then raised.
Audit details hold ids, codes and counts only.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from typing import Any

import redis
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from schemas.errors import InvalidSchemaError, UnknownSchemaError
from schemas.registry import get_schema, list_schemas
from schemas.user_schema import load_user_schema
from service import batch as batches
from service import webhooks
from service.api.context import Actor, ApiContext
from service.api.errors import (
    NOT_FOUND_MESSAGE,
    ConflictApiError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
    classify,
)
from service.api.models import (
    ApiKeyCreated,
    BatchIn,
    BatchOut,
    DocumentOut,
    ErrorInfo,
    ExtractionIn,
    ExtractionOut,
    Readiness,
    RecordOut,
    SchemaIn,
    SchemaList,
    SchemaOut,
    TenantOut,
)
from service.store import audit
from service.store import repositories as repo
from service.store.models import AuditOutcome, Batch, Document, Job, Result, UserSchema
from service.store.session import head_revision
from workers.documents import DocumentError, sniff_media_type
from workers.documents.sniff import SNIFF_BYTES
from workers.engines.constraints import generation_schema
from workers.engines.grammar import UnsupportedSchemaError, compile_json_schema

log = logging.getLogger(__name__)

ANONYMOUS = Actor("anonymous")
ADMIN = Actor("admin")


def _audit(
    session: Session,
    actor: Actor,
    request_id: str,
    action: str,
    target_type: str,
    target_id: object,
    outcome: AuditOutcome,
    details: dict[str, object] | None = None,
    *,
    tenant_id: uuid.UUID | None = None,
) -> None:
    audit.record_event(
        session,
        actor=actor.name,
        tenant_id=tenant_id if tenant_id is not None else actor.tenant_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        request_id=request_id,
        outcome=outcome,
        details=details,
    )


def _audit_refusal(
    ctx: ApiContext,
    actor: Actor,
    request_id: str,
    action: str,
    target_type: str,
    target_id: object,
    error: BaseException,
    *,
    tenant_id: uuid.UUID | None = None,
) -> None:
    """Record a refused action in its own transaction (the action's own one has nothing to commit)."""
    status, code, _, _ = classify(error)
    outcome = AuditOutcome.DENIED if status in (401, 403, 404) else AuditOutcome.FAILURE
    with ctx.session_factory.begin() as session:
        _audit(
            session,
            actor,
            request_id,
            action,
            target_type,
            target_id,
            outcome,
            {"error_code": code, "status": status},
            tenant_id=tenant_id,
        )


def _not_found(kind: str) -> NotFoundError:
    # One message for unknown and foreign ids: the response must not tell them apart.
    return NotFoundError(NOT_FOUND_MESSAGE, details={"resource": kind})


# --- authentication ----------------------------------------------------------------------------------


def authenticate(ctx: ApiContext, presented: str | None, request_id: str) -> Actor:
    """The tenant behind an API key; a missing or unknown key is a 401 (unknown ones are audited)."""
    if not presented:
        raise UnauthorizedError(
            "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'", code="missing_api_key"
        )
    with ctx.session_factory.begin() as session:
        key = repo.find_api_key(session, presented)
        if key is not None:
            return Actor(f"api_key:{key.id}", key.tenant_id)
    error = UnauthorizedError("unknown or revoked API key", code="invalid_api_key")
    _audit_refusal(ctx, ANONYMOUS, request_id, "auth.api_key", "api_key", None, error)
    raise error


def authenticate_admin(ctx: ApiContext, presented: str | None, request_id: str) -> Actor:
    """The admin, if the configured admin token was presented (compared in constant time)."""
    token = ctx.settings.admin_token
    if token is None:
        raise ForbiddenError("admin endpoints are disabled: no admin token is configured", code="admin_disabled")
    if not presented:
        raise UnauthorizedError("send the admin token as 'Authorization: Bearer <token>'", code="missing_admin_token")
    if not hmac.compare_digest(presented.encode("utf-8"), token.get_secret_value().encode("utf-8")):
        error = UnauthorizedError("wrong admin token", code="invalid_admin_token")
        _audit_refusal(ctx, ANONYMOUS, request_id, "auth.admin", "admin", None, error)
        raise error
    return ADMIN


# --- documents ---------------------------------------------------------------------------------------


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
    _audit_refusal(ctx, actor, request_id, "document.upload", "document", None, error)


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
        _audit(
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
        _audit(session, actor, request_id, "document.read", "document", document_id, outcome, details)
        out = None if document is None else _document_out(document)
    if out is None:
        raise _not_found("document")
    return out


# --- extractions -------------------------------------------------------------------------------------


def _extraction_out(job: Job, result: Result | None) -> ExtractionOut:
    record = None
    if result is not None:
        quality: dict[str, Any] = result.flags or {}
        record = RecordOut(
            data=result.data,
            evidence=result.evidence or {},
            flags=list(quality.get("items", [])),
            model=quality.get("model"),
            document=quality.get("document"),
        )
    error = None
    if job.error_code is not None:
        error = ErrorInfo(code=job.error_code, message=job.error_message or "")
    return ExtractionOut(
        id=job.id,
        status=job.status.value,
        document_id=job.document_id,
        schema_name=job.schema_name,
        schema_version=job.schema_version,
        model=job.model,
        backend=job.backend,
        attempts=job.attempts,
        created_at=job.created_at,
        updated_at=job.updated_at,
        error=error,
        timings=job.timings,
        result=record,
    )


def _resolve_schema(
    session: Session, tenant_id: uuid.UUID, name: str, version: int | None
) -> tuple[str, int, UserSchema | None]:
    """Built-in schemas first (their names are reserved), then the tenant's own."""
    if any(spec.name == name for spec in list_schemas()):
        spec = get_schema(name if version is None else f"{name}@{version}")
        return spec.name, spec.version, None
    user = repo.get_user_schema(session, tenant_id, name, version)
    if user is None:
        wanted = name if version is None else f"{name}@{version}"
        raise UnknownSchemaError(f"unknown schema {wanted!r}")
    return user.name, user.version, user


def submit_extraction(ctx: ApiContext, actor: Actor, request_id: str, body: ExtractionIn) -> tuple[ExtractionOut, bool]:
    """Queue a job (job row + outbox row + audit event, one transaction), or return the existing one."""
    tenant_id = actor.tenant()
    try:
        webhook_url = check_webhook(ctx, body.webhook_url)
        with ctx.session_factory.begin() as session:
            if repo.get_document(session, tenant_id, body.document_id) is None:
                raise _not_found("document")
            name, version, user = _resolve_schema(session, tenant_id, body.schema_name, body.schema_version)
            job, created = repo.create_job(
                session,
                tenant_id,
                body.document_id,
                schema_name=name,
                schema_version=version,
                model=ctx.model,
                backend=ctx.backend,
                user_schema=user,
                webhook_url=webhook_url,
            )
            if created:
                repo.add_outbox(session, job.id)
            _audit(
                session,
                actor,
                request_id,
                "extraction.submit",
                "job",
                job.id,
                AuditOutcome.SUCCESS,
                {"created": created, "document_id": body.document_id, "schema_ref": f"{name}@{version}"},
            )
            out = _extraction_out(job, repo.get_result(session, tenant_id, job.id))
    except (NotFoundError, UnprocessableError, UnknownSchemaError) as e:
        _audit_refusal(ctx, actor, request_id, "extraction.submit", "document", body.document_id, e)
        raise
    if created and ctx.background is not None:
        ctx.background.wake()
    log.info("extraction submitted", extra={"job_id": str(out.id), "new": created})
    return out, created


def read_extraction(ctx: ApiContext, actor: Actor, request_id: str, job_id: uuid.UUID) -> ExtractionOut:
    """A job's status and, once succeeded, its record; the read (and whether a record was read) is audited."""
    tenant_id = actor.tenant()
    with ctx.session_factory.begin() as session:
        job = repo.get_job(session, tenant_id, job_id)
        if job is None:
            _audit(
                session,
                actor,
                request_id,
                "extraction.read",
                "job",
                job_id,
                AuditOutcome.DENIED,
                {"error_code": "not_found", "status": 404},
            )
            out = None
        else:
            result = repo.get_result(session, tenant_id, job.id)
            _audit(
                session,
                actor,
                request_id,
                "extraction.read",
                "job",
                job.id,
                AuditOutcome.SUCCESS,
                {"status": job.status.value, "result_id": None if result is None else result.id},
            )
            out = _extraction_out(job, result)
    if out is None:
        raise _not_found("extraction")
    return out


# --- webhooks and batches ----------------------------------------------------------------------------


def check_webhook(ctx: ApiContext, url: object | None) -> str | None:
    """The URL to store, or a 422: webhooks need a signing secret, and the URL must pass the SSRF guard.

    The guard runs again before every delivery attempt (DNS may answer differently by then).
    """
    if url is None:
        return None
    text_url = str(url)
    try:
        webhooks.check_webhook_url(text_url, ctx.settings.webhook_allow_hosts)
    except webhooks.WebhookUrlRefused as e:
        raise UnprocessableError(e.message, code=e.code, details={"reason": e.reason}) from e
    if ctx.settings.webhook_secret is None:
        raise UnprocessableError(
            "webhooks are off: the operator has set no ABSTRACTOR_WEBHOOK_SECRET; poll instead",
            code="webhooks_disabled",
        )
    return text_url


def _batch_out(batch: Batch, state: dict[str, int], new_jobs: int | None = None) -> BatchOut:
    return BatchOut(
        id=batch.id,
        name=batch.source,
        schema_name=batch.schema_name,
        schema_version=batch.schema_version,
        model=batch.model,
        created_at=batch.created_at,
        updated_at=batch.updated_at,
        documents=state["total"],
        counts={k: v for k, v in state.items() if k not in ("total", "done")},
        done=state["done"] >= state["total"],
        new_jobs=new_jobs,
    )


def submit_batch(ctx: ApiContext, actor: Actor, request_id: str, body: BatchIn) -> BatchOut:
    """A new batch over uploaded documents: one item per distinct content, jobs deduplicated, one transaction."""
    tenant_id = actor.tenant()
    try:
        webhook_url = check_webhook(ctx, body.webhook_url)
        with ctx.session_factory.begin() as session:
            documents: dict[str, Document] = {}
            copies: dict[str, int] = {}
            for document_id in body.document_ids:
                document = repo.get_document(session, tenant_id, document_id)
                if document is None:
                    raise NotFoundError(NOT_FOUND_MESSAGE, details={"resource": "document", "id": str(document_id)})
                documents.setdefault(document.sha256, document)
                copies[document.sha256] = copies.get(document.sha256, 0) + 1
            name, version, user = _resolve_schema(session, tenant_id, body.schema_name, body.schema_version)
            batch = repo.create_batch(
                session,
                tenant_id,
                source=body.name or f"api:{request_id}",
                schema_name=name,
                schema_version=version,
                model=ctx.model,
                backend=ctx.backend,
                webhook_url=webhook_url,
            )
            new_jobs = 0
            for sha256, document in documents.items():
                _, created = batches.enqueue_item(
                    session,
                    batch,
                    sha256=sha256,
                    name=str(document.id),
                    document_id=document.id,
                    copies=copies[sha256],
                    user_schema=user,
                )
                new_jobs += int(created)
            _audit(
                session,
                actor,
                request_id,
                "batch.submit",
                "batch",
                batch.id,
                AuditOutcome.SUCCESS,
                {"documents": len(documents), "new_jobs": new_jobs, "schema_ref": f"{name}@{version}"},
            )
            session.flush()
            state = _batch_state(session, batch.id)
            out = _batch_out(batch, state, new_jobs)
    except (NotFoundError, UnprocessableError, UnknownSchemaError) as e:
        _audit_refusal(ctx, actor, request_id, "batch.submit", "batch", None, e)
        raise
    if new_jobs and ctx.background is not None:
        ctx.background.wake()
    log.info("batch submitted", extra={"batch_id": str(out.id), "documents": out.documents, "new_jobs": new_jobs})
    return out


def _batch_state(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    by_status = repo.batch_status_counts(session, batch_id)
    state = {s: by_status.get(s, 0) for s in ("pending", "queued", "running", "succeeded", "failed")}
    state["total"] = sum(by_status.values())
    state["done"] = state["succeeded"] + state["failed"]
    return state


def read_batch(ctx: ApiContext, actor: Actor, request_id: str, batch_id: uuid.UUID) -> BatchOut:
    """A batch's progress; unknown and foreign ids are the same 404."""
    with ctx.session_factory.begin() as session:
        batch = repo.get_batch(session, actor.tenant(), batch_id)
        outcome = AuditOutcome.SUCCESS if batch is not None else AuditOutcome.DENIED
        details = None if batch is not None else {"error_code": "not_found", "status": 404}
        _audit(session, actor, request_id, "batch.read", "batch", batch_id, outcome, details)
        out = None if batch is None else _batch_out(batch, _batch_state(session, batch.id))
    if out is None:
        raise _not_found("batch")
    return out


def batch_export_rows(ctx: ApiContext, actor: Actor, request_id: str, batch_id: uuid.UUID, fmt: str) -> list[Any]:
    """Every item's export row (records included), after an audited ownership check."""
    with ctx.session_factory.begin() as session:
        batch = repo.get_batch(session, actor.tenant(), batch_id)
        outcome = AuditOutcome.SUCCESS if batch is not None else AuditOutcome.DENIED
        details: dict[str, object] = (
            {"format": fmt} if batch is not None else {"error_code": "not_found", "status": 404}
        )
        _audit(session, actor, request_id, "batch.export", "batch", batch_id, outcome, details)
    if batch is None:
        raise _not_found("batch")
    return list(batches.iter_export_rows(ctx.session_factory, batch_id))


# --- schemas -----------------------------------------------------------------------------------------


def _user_schema_out(row: UserSchema, *, with_schema: bool) -> SchemaOut:
    return SchemaOut(
        name=row.name,
        version=row.version,
        kind="user",
        used=row.used,
        created_at=row.created_at,
        json_schema=row.json_schema if with_schema else None,
    )


def schema_list(ctx: ApiContext, actor: Actor) -> SchemaList:
    """Built-in schemas, then the tenant's registered ones."""
    builtins = [
        SchemaOut(name=s.name, version=s.version, kind="builtin", description=s.description) for s in list_schemas()
    ]
    with ctx.session_factory.begin() as session:
        own = [_user_schema_out(r, with_schema=False) for r in repo.list_user_schemas(session, actor.tenant())]
    return SchemaList(schemas=builtins + own)


def schema_detail(ctx: ApiContext, actor: Actor, name: str, version: int | None) -> SchemaOut:
    """One schema with its JSON Schema; another tenant's name answers 404 like an unknown one."""
    if any(spec.name == name for spec in list_schemas()):
        try:
            spec = get_schema(name if version is None else f"{name}@{version}")
        except UnknownSchemaError as e:
            raise _not_found("schema") from e
        return SchemaOut(
            name=spec.name,
            version=spec.version,
            kind="builtin",
            description=spec.description,
            json_schema=spec.json_schema(),
        )
    with ctx.session_factory.begin() as session:
        row = repo.get_user_schema(session, actor.tenant(), name, version)
        out = None if row is None else _user_schema_out(row, with_schema=True)
    if out is None:
        raise _not_found("schema")
    return out


def check_user_schema(json_schema: dict[str, Any], name: str, backend: str) -> None:
    """Refuse (422, with the reason) a schema that is invalid, not an object, or that the backend cannot compile."""
    try:
        user = load_user_schema(json_schema, name=name)
    except InvalidSchemaError as e:
        raise UnprocessableError(str(e), code="invalid_schema") from e
    schema = user.schema
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise UnprocessableError(
            "an extraction schema's root must be {'type': 'object', 'properties': {...}}", code="invalid_schema"
        )
    try:
        # What the pipeline will ask the grammar to enforce: every property required (null = not stated).
        compile_json_schema(generation_schema(schema), backend)  # type: ignore[arg-type]
    except UnsupportedSchemaError as e:
        raise UnprocessableError(e.message, code="unsupported_schema", details={"grammar_backend": backend}) from e


def register_schema(ctx: ApiContext, actor: Actor, request_id: str, body: SchemaIn) -> tuple[SchemaOut, bool]:
    """Register the next version of a tenant's schema (the same content again returns the latest)."""
    try:
        if any(spec.name == body.name for spec in list_schemas()):
            raise ConflictApiError(f"{body.name!r} is a built-in schema's name", code="reserved_schema_name")
        check_user_schema(body.json_schema, body.name, ctx.settings.grammar_backend)
        with ctx.session_factory.begin() as session:
            row, created = repo.register_user_schema(session, actor.tenant(), body.name, body.json_schema)
            _audit(
                session,
                actor,
                request_id,
                "schema.register",
                "schema",
                row.ref,
                AuditOutcome.SUCCESS,
                {"created": created, "version": row.version},
            )
            out = _user_schema_out(row, with_schema=True)
    except (ConflictApiError, UnprocessableError) as e:
        _audit_refusal(ctx, actor, request_id, "schema.register", "schema", body.name, e)
        raise
    return out, created


# --- admin -------------------------------------------------------------------------------------------


def create_tenant(ctx: ApiContext, actor: Actor, request_id: str, name: str) -> TenantOut:
    """A new tenant (names are unique: a taken one is a 409)."""
    with ctx.session_factory.begin() as session:
        tenant = repo.create_tenant(session, name)
        _audit(
            session, actor, request_id, "tenant.create", "tenant", tenant.id, AuditOutcome.SUCCESS, tenant_id=tenant.id
        )
        return TenantOut(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


def create_api_key(ctx: ApiContext, actor: Actor, request_id: str, tenant_id: uuid.UUID, name: str) -> ApiKeyCreated:
    """A new key for a tenant; the plaintext is in this response only."""
    with ctx.session_factory.begin() as session:
        tenant = repo.get_tenant(session, tenant_id)
        if tenant is not None:
            key, plaintext = repo.create_api_key(session, tenant_id, name)
            _audit(
                session,
                actor,
                request_id,
                "api_key.create",
                "api_key",
                key.id,
                AuditOutcome.SUCCESS,
                {"prefix": key.prefix},
                tenant_id=tenant_id,
            )
            return ApiKeyCreated(
                id=key.id,
                tenant_id=tenant_id,
                name=key.name,
                prefix=key.prefix,
                key=plaintext,
                created_at=key.created_at,
            )
    error = _not_found("tenant")
    _audit_refusal(ctx, actor, request_id, "api_key.create", "tenant", tenant_id, error)
    raise error


def revoke_api_key(ctx: ApiContext, actor: Actor, request_id: str, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Revoke a tenant's key at once; an unknown, foreign or already revoked key is a 404."""
    with ctx.session_factory.begin() as session:
        revoked = repo.revoke_api_key(session, tenant_id, key_id)
        outcome = AuditOutcome.SUCCESS if revoked else AuditOutcome.DENIED
        details = None if revoked else {"error_code": "not_found", "status": 404}
        _audit(session, actor, request_id, "api_key.revoke", "api_key", key_id, outcome, details, tenant_id=tenant_id)
    if not revoked:
        raise _not_found("api_key")


# --- health and metrics ------------------------------------------------------------------------------


def job_counts(ctx: ApiContext) -> dict[str, int] | None:
    """Jobs per status across tenants, for the metrics gauge; None when the store cannot answer."""
    try:
        with ctx.session_factory() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    except SQLAlchemyError as e:
        log.warning("job counts unavailable", extra={"exc_type": type(e).__name__})
        return None
    return {status.value: int(n) for status, n in rows}


def readiness(ctx: ApiContext) -> Readiness:
    """Database reachable and migrated, broker reachable (when one is configured), worker alive (embedded)."""
    checks: dict[str, str] = {}
    try:
        with ctx.session_factory() as session:
            # Read the stamp directly: alembic's MigrationContext logs two INFO lines per probe.
            revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
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
