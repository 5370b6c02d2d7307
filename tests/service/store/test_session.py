"""Engine settings per backend, URL resolution, and the revision helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from service.store.errors import StoreConfigError, is_transient
from service.store.session import (
    DEFAULT_DATABASE_URL,
    current_revision,
    database_url,
    head_revision,
    make_engine,
    run_migrations,
)


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'a.db'}")  # parents are created
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        engine.dispose()


def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second writer waits at BEGIN (here: gives up fast), not after it has read."""
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    holder = make_engine(url)
    waiter = make_engine(url, connect_args={"timeout": 0.05})
    try:
        with holder.connect() as first, first.begin():
            first.execute(text("SELECT 1"))
            with waiter.connect() as second, pytest.raises(OperationalError, match="locked"):
                second.execute(text("SELECT 1"))
    finally:
        holder.dispose()
        waiter.dispose()


def test_sqlite_savepoints_work(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sp.db'}")
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            savepoint = connection.begin_nested()
            connection.execute(text("INSERT INTO t VALUES (1)"))
            savepoint.rollback()
            connection.execute(text("INSERT INTO t VALUES (2)"))
            assert connection.execute(text("SELECT x FROM t")).scalars().all() == [2]
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql+pymysql://u@h/db", "not a url"], ids=["unsupported-backend", "malformed"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(StoreConfigError):
        make_engine(url)


def test_database_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSTRACTOR_DATABASE_URL", raising=False)
    monkeypatch.delenv("ABSTRACTOR_DATA_DIR", raising=False)
    assert database_url() == DEFAULT_DATABASE_URL == "sqlite:///var/abstractor.db"
    monkeypatch.setenv("ABSTRACTOR_DATA_DIR", "/srv/data")
    assert database_url() == "sqlite:////srv/data/abstractor.db"
    monkeypatch.setenv("ABSTRACTOR_DATABASE_URL", "sqlite:///from-env.db")
    assert database_url() == "sqlite:///from-env.db"
    assert database_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_current_revision_follows_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rev.db'}"
    engine = make_engine(url)
    try:
        assert current_revision(engine) is None
        run_migrations(url)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_lock_timeouts_count_as_transient(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    holder = make_engine(url)
    waiter = make_engine(url, connect_args={"timeout": 0.05})
    try:
        with holder.connect() as first, first.begin():
            first.execute(text("SELECT 1"))
            with waiter.connect() as second, pytest.raises(OperationalError) as caught:
                second.execute(text("SELECT 1"))
        assert is_transient(caught.value)
        assert not is_transient(ValueError("no"))
    finally:
        holder.dispose()
        waiter.dispose()


def test_division_by_zero_is_not_transient(pg_engine: Engine) -> None:
    with pg_engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text("SELECT 1/0"))
    assert not is_transient(caught.value)
