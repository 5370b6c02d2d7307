"""The audit trail: hash-chained events, written in the caller's transaction and never changed.

Each event stores `prev_hash` (the previous event's `hash`) and
`hash = sha256(canonical JSON of its fields + prev_hash)`, so editing, deleting or reordering a
row breaks the chain from that row on; `verify_chain` finds the first break. The database refuses
UPDATE/DELETE/TRUNCATE on the table (migration 0002) and the app role lacks those privileges
(0003): the chain is what catches a superuser who works around both.

Events hold ids, codes and counts only, never document text or extracted values:
`record_event` refuses details that could carry content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.errors import AnchorError, AuditDetailsError
from service.store.models import GENESIS_HASH, AuditEvent, AuditOutcome, utcnow

# One chain for the whole database: every writer serialises on this key until it commits, so
# record the event as the last statement of a transaction to keep the lock short.
CHAIN_LOCK_KEY = int.from_bytes(hashlib.sha256(b"abstractor.audit_events").digest()[:8], "big", signed=True)

MAX_DETAIL_KEYS = 32
MAX_DETAIL_STRING = 200
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Names that invite content rather than identifiers; a reviewer can't catch every call site, this can.
_CONTENT_KEYS = frozenset(
    {"body", "content", "data", "document", "evidence", "excerpt", "output", "prompt", "quote",
     "record", "snippet", "span_text", "text", "value", "values"}
)  # fmt: skip
_CONTENT_SUFFIXES = ("_text", "_content", "_value", "_values", "_snippet", "_excerpt")

Scalar = str | int | bool | None


_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ChainAnchor:
    """A (seq, hash) pair noted outside the database, so that truncating the tail is detectable too."""

    seq: int
    hash: str

    def to_json(self) -> dict[str, Any]:
        """What `abstractor audit anchor` writes: `{"seq", "hash"}` (seq 0 and the genesis hash: an empty chain)."""
        return {"seq": self.seq, "hash": self.hash}

    @classmethod
    def from_json(cls, value: object) -> ChainAnchor:
        """An anchor read back; `AnchorError` unless it is `{"seq": <int >= 0>, "hash": <64 hex digits>}`."""
        if not isinstance(value, Mapping):
            raise AnchorError("an audit anchor is a JSON object with seq and hash")
        seq, digest = value.get("seq"), value.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise AnchorError("the anchor's seq must be a non-negative integer")
        if not isinstance(digest, str) or not _HASH.fullmatch(digest):
            raise AnchorError("the anchor's hash must be 64 lowercase hex digits")
        return cls(seq=seq, hash=digest)


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_chain` found: `ok`, or the first bad sequence number and why."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head: ChainAnchor | None = None


def _check_scalar(key: str, value: object) -> Scalar:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_STRING or any(ord(c) < 0x20 for c in value):
            raise AuditDetailsError(
                f"audit detail {key!r}: strings must be short single-line ids or codes",
                details={"key": key},
            )
        return value
    # Floats are refused too: they are measurements, not ids or counts, and their JSON is not canonical.
    raise AuditDetailsError(
        f"audit detail {key!r}: {type(value).__name__} is not an id, code or count", details={"key": key}
    )


def clean_details(details: Mapping[str, object] | None) -> dict[str, Any] | None:
    """Check that details hold ids, codes and counts only (flat; lists of those allowed)."""
    if details is None:
        return None
    if len(details) > MAX_DETAIL_KEYS:
        raise AuditDetailsError(f"audit details hold at most {MAX_DETAIL_KEYS} keys")
    out: dict[str, Any] = {}
    for key, value in details.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise AuditDetailsError(f"audit detail key must be snake_case: {key!r}")
        if key in _CONTENT_KEYS or key.endswith(_CONTENT_SUFFIXES):
            raise AuditDetailsError(
                f"audit detail {key!r} looks like content; store ids, codes or counts", details={"key": key}
            )
        if isinstance(value, list | tuple):
            if len(value) > MAX_DETAIL_KEYS:
                raise AuditDetailsError(f"audit detail {key!r}: at most {MAX_DETAIL_KEYS} items")
            out[key] = [_check_scalar(key, item) for item in value]
        else:
            out[key] = _check_scalar(key, value)
    return out


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


class HashedEvent(Protocol):
    """What the hash covers: a stored row, a row being written, or a selected row all have these (read-only)."""

    @property
    def seq(self) -> int: ...

    @property
    def occurred_at(self) -> dt.datetime: ...

    @property
    def actor(self) -> str: ...

    @property
    def tenant_id(self) -> uuid.UUID | None: ...

    @property
    def action(self) -> str: ...

    @property
    def target_type(self) -> str: ...

    @property
    def target_id(self) -> str | None: ...

    @property
    def request_id(self) -> str | None: ...

    @property
    def outcome(self) -> str: ...

    @property
    def details(self) -> Mapping[str, Any] | None: ...


def event_fields(event: HashedEvent) -> dict[str, Any]:
    """The hashed fields of an event in plain JSON types (the same on every backend).

    One reading of an event for both writing its hash and checking it, so the two cannot drift.
    """
    return {
        "seq": event.seq,
        "occurred_at": _timestamp(event.occurred_at),
        "actor": event.actor,
        "tenant_id": None if event.tenant_id is None else str(event.tenant_id),
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "request_id": event.request_id,
        "outcome": event.outcome,
        "details": None if event.details is None else dict(event.details),
    }


def chain_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) followed by `prev_hash`."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8") + prev_hash.encode("ascii")).hexdigest()


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Transaction-scoped: released by the caller's COMMIT or ROLLBACK, never by us.
        session.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK_KEY)))
    # SQLite: the engine from session.make_engine opens every transaction with BEGIN IMMEDIATE, so
    # this transaction already holds the database's single write lock.


def chain_head(session: Session) -> ChainAnchor | None:
    """The newest event's (seq, hash): export it now and then, and pass it back to `verify_chain`."""
    row = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    return None if row is None else ChainAnchor(seq=row.seq, hash=row.hash)


def record_event(
    session: Session,
    *,
    actor: str,
    tenant_id: uuid.UUID | None,
    action: str,
    target_type: str,
    target_id: str | uuid.UUID | None,
    request_id: str | None,
    outcome: AuditOutcome | str,
    details: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Append an event to the chain inside the caller's transaction (flushed, never committed)."""
    clean = clean_details(details)
    outcome_value = AuditOutcome(outcome).value
    target = None if target_id is None else str(target_id)
    _lock_chain(session)
    head = chain_head(session)
    seq, prev_hash = (1, GENESIS_HASH) if head is None else (head.seq + 1, head.hash)
    event = AuditEvent(
        seq=seq,
        occurred_at=utcnow(),
        actor=actor,
        tenant_id=tenant_id,
        action=action,
        target_type=target_type,
        target_id=target,
        request_id=request_id,
        outcome=outcome_value,
        details=clean,
        prev_hash=prev_hash,
    )
    event.hash = chain_hash(event_fields(event), prev_hash)
    session.add(event)
    # Flush now so a clash on seq surfaces here, at the call, rather than at the caller's commit.
    session.flush()
    return event


def list_events(
    session: Session,
    *,
    tenant_id: uuid.UUID | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEvent]:
    """Events in chain order after `after_seq` (keyset paging), optionally one tenant's only."""
    query = select(AuditEvent).where(AuditEvent.seq > after_seq)
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(AuditEvent.seq).limit(limit)))


def verify_chain(session: Session, *, anchor: ChainAnchor | None = None, batch_size: int = 1000) -> VerifyReport:
    """Walk the chain in seq order; report the first edited, missing or reordered event.

    With an `anchor` noted earlier, also a chain that no longer reaches it (its newest events deleted) or
    whose event at the anchor's seq has another hash (the chain rewritten and its hashes recomputed).
    """
    if anchor is not None and anchor.seq == 0:
        if anchor.hash != GENESIS_HASH:
            return VerifyReport(
                ok=False, checked=0, first_bad_seq=0, reason="an anchor at seq 0 must hold the genesis hash"
            )
        anchor = None  # taken from an empty chain: every chain reaches it
    columns = AuditEvent.__table__.c
    rows = session.execute(
        select(*columns).order_by(columns.seq).execution_options(yield_per=batch_size, stream_results=True)
    )
    expected_seq, expected_prev = 1, GENESIS_HASH
    checked = 0
    anchor_seen = False
    for row in rows:
        problem: str | None = None
        if row.seq != expected_seq:
            problem = f"expected seq {expected_seq}, found {row.seq}: events missing or reordered"
        elif row.prev_hash != expected_prev:
            problem = "prev_hash does not match the previous event's hash: events missing or reordered"
        else:
            fields = event_fields(row)
            if chain_hash(fields, row.prev_hash) != row.hash:
                problem = "hash does not match the event's fields: event edited"
            elif anchor is not None and row.seq == anchor.seq:
                anchor_seen = True
                if row.hash != anchor.hash:
                    problem = "hash differs from the anchor noted earlier: chain rewritten"
        if problem is not None:
            rows.close()
            head = ChainAnchor(expected_seq - 1, expected_prev) if checked else None
            return VerifyReport(ok=False, checked=checked, first_bad_seq=row.seq, reason=problem, head=head)
        checked += 1
        expected_seq, expected_prev = row.seq + 1, row.hash
    head = ChainAnchor(expected_seq - 1, expected_prev) if checked else None
    if anchor is not None and not anchor_seen:
        return VerifyReport(
            ok=False,
            checked=checked,
            first_bad_seq=expected_seq,
            reason=f"chain ends before the anchor at seq {anchor.seq}: newest events removed",
            head=head,
        )
    return VerifyReport(ok=True, checked=checked, head=head)
