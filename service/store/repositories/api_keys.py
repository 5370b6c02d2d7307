"""API keys: stored as a prefix and a hash, shown once, compared in constant time, revoked at once."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.store import keys
from service.store.models import ApiKey, utcnow
from service.store.repositories.shared import update_rows


def create_api_key(session: Session, tenant_id: uuid.UUID, name: str) -> tuple[ApiKey, str]:
    """Create a key for a tenant; the plaintext is returned here once and is not recoverable later."""
    new = keys.generate_api_key()
    row = ApiKey(id=uuid.uuid4(), tenant_id=tenant_id, name=name, prefix=new.prefix, key_hash=new.key_hash)
    session.add(row)
    session.flush()
    return row, new.plaintext


# Compared against when no row matches, so a miss costs the same hash-and-compare as a hit.
_DUMMY_HASH = keys.hash_api_key("abk_000000000000_not-a-key")


def find_api_key(session: Session, plaintext: str) -> ApiKey | None:
    """The live (unrevoked) key a request presented, or None; the hash comparison is constant-time."""
    prefix = keys.key_prefix(plaintext)
    row = None
    if prefix is not None:
        row = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))).one_or_none()
    matches = keys.key_matches(plaintext, row.key_hash if row is not None else _DUMMY_HASH)
    return row if row is not None and matches else None


def revoke_api_key(session: Session, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """Revoke a tenant's key; False when it is not theirs or already revoked."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return update_rows(session, statement, ApiKey, [key_id]) == 1
