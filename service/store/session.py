"""Engines, sessions and the Alembic entry points; the one place that knows backend quirks."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from service.store.errors import StoreConfigError
from service.store.files import private_sqlite

DEFAULT_DATABASE_URL = "sqlite:///var/abstractor.db"
"""The embedded default with the default data folder; `service.config.Settings` derives it from `data_dir`."""

DATABASE_URL_ENV = "ABSTRACTOR_DATABASE_URL"
DATA_DIR_ENV = "ABSTRACTOR_DATA_DIR"
APP_ROLE_ENV = "ABSTRACTOR_DATABASE_APP_ROLE"
DEFAULT_APP_ROLE = "abstractor_app"
"""The non-superuser Postgres role the migrations grant to (append-only on audit_events)."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_url(explicit: str | None = None) -> str:
    """The URL to use: the argument, else `ABSTRACTOR_DATABASE_URL`, else `abstractor.db` in `ABSTRACTOR_DATA_DIR`."""
    if explicit or os.environ.get(DATABASE_URL_ENV):
        return explicit or os.environ[DATABASE_URL_ENV]
    data_dir = os.environ.get(DATA_DIR_ENV)
    return f"sqlite:///{Path(data_dir) / 'abstractor.db'}" if data_dir else DEFAULT_DATABASE_URL


def app_role_name(explicit: str | None = None) -> str:
    """The application role's name, checked, because it is spliced into DDL (GRANT cannot bind it)."""
    name = explicit or os.environ.get(APP_ROLE_ENV) or DEFAULT_APP_ROLE
    if not _ROLE_NAME.fullmatch(name):
        raise StoreConfigError(f"database app role must match {_ROLE_NAME.pattern}: {name!r}", code="bad_app_role")
    return name


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with our backend settings: SQLite gets FKs, WAL and real transactions; Postgres pre-ping."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StoreConfigError(f"invalid database URL: {e}", code="bad_database_url") from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            # 0700 folders and a 0600 file before SQLite opens it: its -wal and -shm take the file's mode.
            try:
                private_sqlite(Path(database))
            except OSError as e:
                raise StoreConfigError(f"cannot create the SQLite file: {e.strerror}", code="database_path") from e
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    raise StoreConfigError(f"unsupported database backend {backend!r}", code="bad_database_url")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's legacy mode only BEGINs before DML, which breaks SAVEPOINT and lets reads escape the
    # transaction; switch it off and BEGIN ourselves (SQLAlchemy's documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front: writers queue on busy_timeout instead of failing later
    # with SQLITE_BUSY on a stale snapshot, and the audit chain tail is read under that lock.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for use cases; use `with factory.begin() as session:` so the caller commits once."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | None = None, *, app_role: str | None = None) -> Config:
    """An Alembic config that needs no alembic.ini: the URL travels as an attribute, unescaped."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url(url)
    config.attributes["app_role"] = app_role_name(app_role)
    return config


def run_migrations(url: str | None = None, revision: str = "head", *, app_role: str | None = None) -> None:
    """Upgrade the database to `revision`; what `abstractor migrate` and the Helm hook run."""
    command.upgrade(alembic_config(url, app_role=app_role), revision)


def downgrade(url: str | None = None, revision: str = "-1", *, app_role: str | None = None) -> None:
    """Downgrade the database to `revision` (`-1`: one step; `base`: drop everything we created)."""
    command.downgrade(alembic_config(url, app_role=app_role), revision)


def head_revision() -> str:
    """The newest revision the code ships."""
    head = ScriptDirectory.from_config(alembic_config(DEFAULT_DATABASE_URL)).get_current_head()
    if head is None:
        raise StoreConfigError("no migrations found", code="no_migrations")
    return head


def stamped_revision(session: Session) -> str | None:
    """The revision the database is stamped with, read directly (readiness probes call this every few seconds:
    alembic's MigrationContext would log two INFO lines per probe)."""
    return session.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when never migrated); for readiness checks."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
