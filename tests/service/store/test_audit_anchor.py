"""Acceptance 4: `abstractor audit anchor` and `abstractor audit verify --anchor` catch what the chain cannot.

A superuser who deletes the newest events, or who rewrites the chain from the start and recomputes
every hash, leaves a chain that verifies on its own. An anchor taken before (the head's seq and hash,
kept outside the database) catches both. Run through the real command, on Postgres and on SQLite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from service.store.audit import chain_hash, event_fields, record_event
from service.store.models import GENESIS_HASH, AuditEvent
from service.store.session import make_engine, make_session_factory, run_migrations

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A fresh migrated store (committed to) and a superuser engine on it."""
    if request.param == "postgres":
        pg_database: Callable[[], str] = request.getfixturevalue("pg_database")
        url = pg_database()
        run_migrations(url, app_role=request.getfixturevalue("app_role"))
    else:
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        run_migrations(url)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


def _cli(url: str, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABSTRACTOR_")}
    env.update({"ABSTRACTOR_DATABASE_URL": url, "ABSTRACTOR_ENVIRONMENT": "test"})
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "audit", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) <= 1, done.stdout  # one JSON line, like the other commands
    return done.returncode, json.loads(lines[0]) if lines else None, done.stderr


def _events(engine: Engine, n: int) -> None:
    with make_session_factory(engine).begin() as session:
        for i in range(n):
            record_event(
                session,
                actor="admin",
                tenant_id=uuid.uuid4(),
                action="tenant.create",
                target_type="tenant",
                target_id=uuid.uuid4(),
                request_id=f"req-{i}",
                outcome="success",
                details={"created": True, "index": i},
            )


def _as_superuser(engine: Engine, *statements: tuple[str, dict[str, Any]]) -> None:
    """Change audit rows past the append-only triggers (a superuser can; the app role cannot)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
        for sql, params in statements:
            connection.execute(text(sql), params)


def _recompute_chain(engine: Engine, edit: Callable[[AuditEvent], None]) -> None:
    """Rewrite every event (after `edit`) and recompute every hash, as a careful forger would."""
    with Session(engine) as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        session.expunge_all()
    prev = GENESIS_HASH
    updates: list[tuple[str, dict[str, Any]]] = []
    cast = "CAST(:details AS jsonb)" if engine.dialect.name == "postgresql" else ":details"
    for row in rows:
        edit(row)
        fields = event_fields(row)
        digest = chain_hash(fields, prev)
        sql = (
            f"UPDATE audit_events SET actor = :actor, details = {cast}, prev_hash = :prev, hash = :hash "
            "WHERE seq = :seq"
        )
        params = {"actor": row.actor, "details": json.dumps(row.details), "prev": prev, "hash": digest, "seq": row.seq}
        updates.append((sql, params))
        prev = digest
    _as_superuser(engine, *updates)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the command's shape: one backend is enough
def test_an_anchor_is_the_head_as_one_json_line(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    code, empty, _ = _cli(url, "anchor")
    assert code == 0 and empty is not None and (empty["seq"], empty["hash"]) == (0, GENESIS_HASH)
    _events(engine, 4)
    out = tmp_path / "anchor.json"
    code, line, _ = _cli(url, "anchor", "--out", str(out))
    assert code == 0 and line is not None and line["seq"] == 4 and len(line["hash"]) == 64
    assert json.loads(out.read_text()) == line and set(line) == {"seq", "hash", "taken_at"}
    code, report, _ = _cli(url, "verify", "--anchor", str(out))
    assert code == 0 and report == {
        "ok": True,
        "checked": 4,
        "first_bad_seq": None,
        "reason": None,
        "head": {"seq": 4, "hash": line["hash"]},
        "anchored": True,
    }
    _events(engine, 2)  # the chain grows past its anchor: still fine
    assert _cli(url, "verify", "--anchor", str(out))[0] == 0
    empty_anchor = tmp_path / "empty.json"
    empty_anchor.write_text(json.dumps(empty))
    assert _cli(url, "verify", "--anchor", str(empty_anchor))[0] == 0


def test_a_deleted_tail_is_caught_against_an_earlier_anchor(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    _events(engine, 6)
    anchor = tmp_path / "anchor.json"
    assert _cli(url, "anchor", "--out", str(anchor))[0] == 0
    _as_superuser(engine, ("DELETE FROM audit_events WHERE seq >= :s", {"s": 4}))
    code, alone, _ = _cli(url, "verify")
    assert code == 0 and alone is not None and alone["ok"]  # the chain alone cannot tell it was longer
    code, report, _ = _cli(url, "verify", "--anchor", str(anchor))
    assert code == 1 and report is not None and not report["ok"]
    assert report["first_bad_seq"] == 4 and "before the anchor" in report["reason"]
    assert report["head"]["seq"] == 3


def test_a_recomputed_chain_is_caught_against_an_earlier_anchor(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    _events(engine, 5)
    anchor = tmp_path / "anchor.json"
    assert _cli(url, "anchor", "--out", str(anchor))[0] == 0

    def forge(row: AuditEvent) -> None:
        if row.seq == 2:
            row.actor = "api_key:someone-else"

    _recompute_chain(engine, forge)
    code, alone, _ = _cli(url, "verify")
    assert code == 0 and alone is not None and alone["ok"] and alone["checked"] == 5  # consistent on its own
    code, report, _ = _cli(url, "verify", "--anchor", str(anchor))
    assert code == 1 and report is not None and not report["ok"]
    assert report["first_bad_seq"] == 5 and "rewritten" in report["reason"]
    # Deleting the tail *and* recomputing the rest is caught too: the anchored seq is gone.
    _as_superuser(engine, ("DELETE FROM audit_events WHERE seq >= :s", {"s": 5}))
    assert _cli(url, "verify", "--anchor", str(anchor))[0] == 1


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("content", "code"),
    [(None, "not_found"), ("not json", "invalid_anchor"), ('{"seq": -1, "hash": "x"}', "invalid_anchor")],
    ids=["missing", "not-json", "bad-fields"],
)
def test_a_bad_anchor_file_is_an_error_line(
    store: tuple[str, Engine], tmp_path: Path, content: str | None, code: str
) -> None:
    url, _ = store
    path = tmp_path / "anchor.json"
    if content is not None:
        path.write_text(content)
    status, line, stderr = _cli(url, "verify", "--anchor", str(path))
    assert status == 2 and line is None
    assert json.loads(stderr.strip().splitlines()[-1])["error"]["code"] == code


def test_an_unmigrated_store_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    status, line, stderr = _cli(f"sqlite:///{tmp_path / 'empty.db'}", "anchor")
    assert status == 2 and line is None
    assert json.loads(stderr.strip())["error"]["code"] == "store_unavailable"
