"""What the aggregates' repositories share: insert-or-get in a savepoint, guarded updates, leased claims."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Update, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store.models import OutboxMessage, WebhookDelivery

T = TypeVar("T")


def insert_or_get(session: Session, row: T, existing: Callable[[], T | None]) -> tuple[T, bool]:
    """Insert `row` in a savepoint; if a unique key beat us, return the row that won instead."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = existing()
        if found is None:  # the violation was not the race we expected (e.g. a bad foreign key)
            raise
        return found, False
    return row, True


def update_rows(session: Session, statement: Update, cls: type[object], ids: Iterable[object]) -> int:
    """Run a guarded UPDATE; return how many rows it changed, and expire cached copies of `ids`.

    ORM "evaluate" sync would trust a stale object, and "fetch" sync skips attributes never loaded
    (NULLs left unset at INSERT); expiring is simple and always right: the next read asks the database.
    """
    result = cast(CursorResult[Any], session.execute(statement.execution_options(synchronize_session=False)))
    for key in ids:
        cached = session.identity_map.get(session.identity_key(cls, key))
        if cached is not None:
            session.expire(cached)
    return result.rowcount


Leased = TypeVar("Leased", OutboxMessage, WebhookDelivery)


def claim_leased(
    session: Session,
    cls: type[Leased],
    *,
    due: Sequence[Any],
    order_by: Sequence[Any],
    limit: int,
    lease: dt.timedelta,
    now: dt.datetime,
) -> list[Leased]:
    """Lease up to `limit` rows matching `due` that no live lease holds, counting an attempt on each;
    returned in `order_by`'s order.

    Postgres skips rows another claimer has locked (SKIP LOCKED); SQLite has one writer anyway.
    """
    ids = list(
        session.scalars(
            select(cls.id)
            .where(*due, or_(cls.claimed_until.is_(None), cls.claimed_until < now))
            .order_by(*order_by)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    statement = update(cls).where(cls.id.in_(ids)).values(claimed_until=now + lease, attempts=cls.attempts + 1)
    update_rows(session, statement, cls, ids)
    rows = {row.id: row for row in session.scalars(select(cls).where(cls.id.in_(ids)))}
    return [rows[row_id] for row_id in ids]  # in `order_by`'s order
