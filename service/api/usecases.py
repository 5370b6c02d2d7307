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
from service.store.models import AuditOutcome, Document, Job, Result, UserSchema
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
        if body.webhook_url is not None:
            raise UnprocessableError(
                "webhooks are not supported yet; poll GET /v1/extractions/{id}", code="webhook_unsupported"
            )
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
