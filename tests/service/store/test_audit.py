"""The audit chain: written in the caller's transaction, ordered under concurrency, tamper-evident."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from service.store.audit import (
    ChainAnchor,
    chain_hash,
    chain_head,
    clean_details,
    event_fields,
    list_events,
    record_event,
    verify_chain,
)
from service.store.errors import AuditDetailsError
from service.store.models import GENESIS_HASH, AuditEvent
from service.store.session import make_engine, make_session_factory, run_migrations


def _record(session: Session, n: int = 1, **overrides: object) -> list[AuditEvent]:
    events = []
    for i in range(n):
        fields: dict[str, object] = {
            "actor": "api_key:abcdef012345",
            "tenant_id": uuid.uuid4(),
            "action": "job.create",
            "target_type": "job",
            "target_id": uuid.uuid4(),
            "request_id": f"req-{i}",
            "outcome": "success",
            "details": {"document_id": str(uuid.uuid4()), "pages": 3, "schema": "nda@1"},
        }
        fields.update(overrides)
        events.append(record_event(session, **fields))  # type: ignore[arg-type]
    return events


def _tamper(session: Session, sql: str, **params: object) -> None:
    """Change audit rows the way a superuser could: with the append-only triggers out of the way.

    Everything happens inside the test's transaction, so the rollback puts the triggers back.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
        session.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
    session.execute(text(sql), params)


def test_events_chain_and_verify(session: Session) -> None:
    before = chain_head(session)
    events = _record(session, 5)
    first_seq = 1 if before is None else before.seq + 1
    assert [e.seq for e in events] == list(range(first_seq, first_seq + 5))
    assert events[0].prev_hash == (GENESIS_HASH if before is None else before.hash)
    for previous, event in itertools.pairwise(events):
        assert event.prev_hash == previous.hash
    report = verify_chain(session)
    assert report.ok, report
    assert report.head == ChainAnchor(events[-1].seq, events[-1].hash)
    assert verify_chain(session, anchor=ChainAnchor(events[2].seq, events[2].hash)).ok


def test_hash_is_sha256_of_canonical_json_plus_prev_hash(session: Session) -> None:
    (event,) = _record(session, details={"b": 1, "a": ["x", 2]})
    session.expire_all()  # read back what the database holds, not what we handed it
    stored = session.get(AuditEvent, event.seq)
    assert stored is not None
    fields = event_fields(stored)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert stored.hash == hashlib.sha256(canonical.encode() + stored.prev_hash.encode()).hexdigest()
    assert canonical.startswith('{"action":"job.create","actor":')


def test_record_event_does_not_commit(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    try:
        with factory() as session:
            count = session.scalar(select(func.count()).select_from(AuditEvent))
            _record(session, 2)
            session.rollback()
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(AuditEvent)) == count
    finally:
        engine.dispose()


def test_edit_is_caught(session: Session) -> None:
    events = _record(session, 4)
    _tamper(session, "UPDATE audit_events SET actor = 'mallory' WHERE seq = :seq", seq=events[1].seq)
    report = verify_chain(session)
    assert not report.ok
    assert report.first_bad_seq == events[1].seq
    assert report.reason is not None and "edited" in report.reason


def test_edit_details_is_caught(session: Session) -> None:
    events = _record(session, 3)
    _tamper(session, "UPDATE audit_events SET details = NULL WHERE seq = :seq", seq=events[2].seq)
    assert verify_chain(session).first_bad_seq == events[2].seq


def test_edit_with_recomputed_row_hash_breaks_the_next_link(session: Session) -> None:
    events = _record(session, 3)
    forged = events[1]
    fields = {**event_fields(forged), "actor": "mallory"}
    _tamper(
        session,
        "UPDATE audit_events SET actor = 'mallory', hash = :h WHERE seq = :seq",
        h=chain_hash(fields, forged.prev_hash),
        seq=forged.seq,
    )
    report = verify_chain(session)
    # The forged row checks out on its own; the next row still points at the original hash.
    assert report.first_bad_seq == events[2].seq
    assert report.reason is not None and "prev_hash" in report.reason


def test_delete_is_caught(session: Session) -> None:
    events = _record(session, 4)
    _tamper(session, "DELETE FROM audit_events WHERE seq = :seq", seq=events[1].seq)
    report = verify_chain(session)
    assert not report.ok
    assert report.first_bad_seq == events[2].seq
    assert report.reason is not None and "missing" in report.reason


def test_delete_and_renumber_is_caught(session: Session) -> None:
    events = _record(session, 4)
    _tamper(session, "DELETE FROM audit_events WHERE seq = :seq", seq=events[1].seq)
    for event in events[2:]:
        _tamper(session, "UPDATE audit_events SET seq = seq - 1 WHERE seq = :seq", seq=event.seq)
    report = verify_chain(session)
    assert report.first_bad_seq == events[1].seq
    assert report.reason is not None and "prev_hash" in report.reason


def test_reorder_is_caught(session: Session) -> None:
    events = _record(session, 4)
    a, b = events[1].seq, events[2].seq
    _tamper(session, "UPDATE audit_events SET seq = -1 WHERE seq = :a", a=a)
    _tamper(session, "UPDATE audit_events SET seq = :a WHERE seq = :b", a=a, b=b)
    _tamper(session, "UPDATE audit_events SET seq = :b WHERE seq = -1", b=b)
    report = verify_chain(session)
    assert not report.ok
    assert report.first_bad_seq == a


def test_truncated_tail_needs_an_anchor(session: Session) -> None:
    events = _record(session, 3)
    anchor = ChainAnchor(events[-1].seq, events[-1].hash)
    _tamper(session, "DELETE FROM audit_events WHERE seq = :seq", seq=events[-1].seq)
    assert verify_chain(session).ok  # a chain alone cannot know it used to be longer
    report = verify_chain(session, anchor=anchor)
    assert not report.ok
    assert report.first_bad_seq == events[-1].seq


def test_rewritten_chain_is_caught_by_anchor(session: Session) -> None:
    events = _record(session, 2)
    anchor = ChainAnchor(events[0].seq, "0" * 63 + "1")
    assert verify_chain(session, anchor=anchor).first_bad_seq == events[0].seq


@pytest.mark.parametrize(
    "details",
    [
        {"text": "Patient reports chest pain"},
        {"note_text": "x"},
        {"extracted_value": "Acme Corp"},
        {"reason": "line one\nline two"},
        {"reason": "x" * 201},
        {"score": 0.93},
        {"nested": {"a": 1}},
        {"Bad-Key": 1},
        {f"k{i}": i for i in range(33)},
    ],
    ids=["text", "text-suffix", "value-suffix", "multiline", "long", "float", "nested", "key", "too-many"],
)
def test_content_is_refused(details: dict[str, object]) -> None:
    with pytest.raises(AuditDetailsError):
        clean_details(details)


def test_refused_details_write_nothing(session: Session) -> None:
    head = chain_head(session)
    with pytest.raises(AuditDetailsError):
        _record(session, details={"content": "secret"})
    assert chain_head(session) == head


def test_ids_codes_and_counts_are_kept() -> None:
    job = uuid.uuid4()
    assert clean_details({"job_id": job, "pages": 3, "error_code": "timeout", "ok": True, "ids": ["a", 1]}) == {
        "job_id": str(job),
        "pages": 3,
        "error_code": "timeout",
        "ok": True,
        "ids": ["a", 1],
    }


def test_bad_outcome_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="maybe"):
        _record(session, outcome="maybe")


def _write_concurrently(url: str, threads: int, per_thread: int) -> None:
    engine = make_engine(url, pool_size=threads)
    factory = make_session_factory(engine)
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            with factory.begin() as session:
                _record(session)

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for future in [pool.submit(work) for _ in range(threads)]:
                future.result()  # re-raises a worker's exception here
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_concurrent_writers_keep_one_chain(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if backend == "postgres":
        url: str = request.getfixturevalue("pg_commit_url")
    else:
        url = f"sqlite:///{tmp_path / 'concurrent.db'}"
        run_migrations(url)
    engine: Engine = make_engine(url)
    try:
        with Session(engine) as session:
            before = chain_head(session)
        _write_concurrently(url, threads=8, per_thread=5)
        with Session(engine) as session:
            report = verify_chain(session)
            assert report.ok, report
            start = 0 if before is None else before.seq
            assert report.head is not None and report.head.seq == start + 40
            seqs = session.scalars(select(AuditEvent.seq).where(AuditEvent.seq > start).order_by(AuditEvent.seq))
            assert list(seqs) == list(range(start + 1, start + 41))
    finally:
        engine.dispose()


def test_list_events_pages_and_scopes(session: Session) -> None:
    mine = uuid.uuid4()
    first, _, third = _record(session, 3, tenant_id=mine)
    _record(session, 1)  # someone else's
    assert [e.seq for e in list_events(session, tenant_id=mine, after_seq=first.seq - 1)] == [
        first.seq,
        first.seq + 1,
        third.seq,
    ]
    assert [e.seq for e in list_events(session, tenant_id=mine, after_seq=first.seq, limit=1)] == [first.seq + 1]
