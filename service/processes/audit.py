"""`abstractor audit anchor` and `abstractor audit verify`: the audit chain's head, kept outside the database.

The chain (service/store/audit.py) shows an edited, reordered or missing event by itself, but not a
deleted tail nor a chain rewritten from the start with its hashes recomputed (a superuser can do
both). An anchor, the head's sequence number and hash noted now and kept elsewhere (a ticket, a
write-once bucket, a printout), catches both later: the chain must still reach the anchor's sequence
number, and its event there must still have the anchor's hash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.store.audit import ChainAnchor, VerifyReport, chain_head, verify_chain
from service.store.errors import AnchorError, StoreError
from service.store.models import GENESIS_HASH
from service.store.session import make_engine, make_session_factory


def _sessions(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.database_url, hide_parameters=True))


@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[Session]:
    """A session on the store; its failures (unreachable, not migrated) as one `StoreError`, no traceback."""
    factory = _sessions(settings)
    try:
        with factory() as session:
            yield session
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read the audit trail ({type(e).__name__})", code="store_unavailable") from e
    finally:
        bind = factory.kw.get("bind")
        if bind is not None:
            bind.dispose()


def take_anchor(settings: Settings, out: Path | None = None) -> dict[str, Any]:
    """The chain's head now (seq 0 and the genesis hash for an empty chain), written to `out` if given."""
    with _store(settings) as session:
        head = chain_head(session) or ChainAnchor(seq=0, hash=GENESIS_HASH)
    line = {**head.to_json(), "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    if out is not None:
        out.write_text(json.dumps(line) + "\n", encoding="utf-8")
    return line


def read_anchor(path: Path) -> ChainAnchor:
    """An anchor file written by `take_anchor` (`AnchorError` if it is not one)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise AnchorError("no such anchor file", code="not_found") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnchorError("the anchor file is not JSON") from e
    return ChainAnchor.from_json(value)


def verify(settings: Settings, anchor_path: Path | None = None) -> VerifyReport:
    """Walk the whole chain, against the anchor in `anchor_path` when given."""
    anchor = read_anchor(anchor_path) if anchor_path is not None else None
    with _store(settings) as session:
        return verify_chain(session, anchor=anchor)


def report_json(report: VerifyReport, anchor_path: Path | None) -> dict[str, Any]:
    """The one JSON line `abstractor audit verify` prints."""
    return {
        "ok": report.ok,
        "checked": report.checked,
        "first_bad_seq": report.first_bad_seq,
        "reason": report.reason,
        "head": None if report.head is None else report.head.to_json(),
        "anchored": anchor_path is not None,
    }
