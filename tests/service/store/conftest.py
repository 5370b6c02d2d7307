"""Real databases for the store tests: throwaway Postgres databases and SQLite files, migrated once.

Postgres: each run creates its own `abstractor_test_<hex>` databases and app role on the server at
ABSTRACTOR_TEST_POSTGRES_URL (default: the local `test` database as `postgres`) and drops them at
the end, so parallel runs never collide. Repository tests run inside a transaction that is rolled
back; tests that must commit (concurrency) use a separate database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.store.session import make_engine, run_migrations

ADMIN_URL = os.environ.get("ABSTRACTOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit superuser connection to the server, for CREATE/DROP DATABASE and roles."""
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Postgres not reachable at {ADMIN_URL}: {e.orig}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app_role(pg_admin: Engine) -> Iterator[str]:
    """A per-run application role name (roles are cluster-wide); dropped after the databases."""
    name = f"abstractor_app_t{uuid.uuid4().hex[:10]}"
    yield name
    with pg_admin.connect() as connection:
        connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))


@pytest.fixture(scope="session")
def pg_database(pg_admin: Engine, app_role: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty Postgres databases; each is dropped at the end of the run."""
    created: list[str] = []

    def make() -> str:
        name = f"abstractor_test_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    with pg_admin.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_url(pg_database: Callable[[], str], app_role: str) -> str:
    """A migrated Postgres database for rollback-per-test repository tests (never committed to)."""
    url = pg_database()
    run_migrations(url, app_role=app_role)
    return url


@pytest.fixture(scope="session")
def pg_commit_url(pg_database: Callable[[], str], app_role: str) -> str:
    """A second migrated Postgres database for the few tests that must commit (concurrency)."""
    url = pg_database()
    run_migrations(url, app_role=app_role)
    return url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'store.db'}"
    run_migrations(url)
    return url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """Engine on the rollback-only Postgres database."""
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """Engine on the migrated SQLite file."""
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def db_engine(request: pytest.FixtureRequest) -> Engine:
    """Each repository test runs once per backend (named so as not to shadow the model `engine`)."""
    name = "pg_engine" if request.param == "postgres" else "sqlite_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def _rollback_session(engine: Engine) -> Iterator[Session]:
    connection = engine.connect()
    outer = connection.begin()
    # Repositories' own SAVEPOINTs nest inside; nothing reaches the database past this test.
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    """A session whose every change is rolled back after the test (both backends)."""
    yield from _rollback_session(db_engine)


@pytest.fixture
def pg_session(pg_engine: Engine) -> Iterator[Session]:
    """A rolled-back session on Postgres, as the superuser that owns the tables."""
    yield from _rollback_session(pg_engine)


@pytest.fixture
def sqlite_session(sqlite_engine: Engine) -> Iterator[Session]:
    """A rolled-back session on SQLite."""
    yield from _rollback_session(sqlite_engine)


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    """An empty blob directory."""
    return tmp_path / "blobs"
