"""The store's exception root, split the way callers must react: fix config, retry, or reject."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

from workers.errors import AbstractorError


class StoreError(AbstractorError):
    """Root of every error raised by `service.store` (the house's one base gives it `code`, `message`, `details`)."""

    code = "store_error"


class StoreConfigError(StoreError):
    """The deployment is wrong (bad URL, bad role name, missing blob directory): retrying will not help."""

    code = "store_config_error"


class TransientStoreError(StoreError):
    """A passing fault (lock timeout, serialization failure, lost connection): retry the whole transaction."""

    code = "store_transient_error"


class BadInputStoreError(StoreError):
    """The request itself is wrong (illegal transition, schema already in use, content in an audit event)."""

    code = "bad_input"


class InvalidTransitionError(BadInputStoreError):
    """A job status change that the state machine never allows (e.g. succeeded -> running)."""

    code = "invalid_transition"


class AuditDetailsError(BadInputStoreError):
    """Audit details may hold ids, codes and counts only; anything that could be content is refused."""

    code = "audit_details_rejected"


class AnchorError(BadInputStoreError):
    """An audit anchor file that is not `{"seq": <int>, "hash": <64 hex digits>}`."""

    code = "invalid_anchor"


class IntegrityCheckError(StoreError):
    """Stored bytes no longer match their recorded sha256: the blob store was altered or damaged."""

    code = "integrity_check_failed"


class ConflictError(BadInputStoreError):
    """A unique name or key that already exists (tenant name, schema version taken by a concurrent call)."""

    code = "conflict"


# Serialization failure, deadlock, lock timeout, server shutting down or full: the same transaction
# run again later can succeed. Class 08 (connection exceptions) is matched by prefix.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})


def is_transient(error: BaseException) -> bool:
    """Whether a database error is worth retrying the whole transaction for (Celery asks this)."""
    if isinstance(error, TransientStoreError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")):
        return True
    # SQLite reports its busy write lock only in the message.
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)
