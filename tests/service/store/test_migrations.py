"""Migrations go up and down cleanly on both backends and leave no drift from the ORM models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from service.store.errors import StoreConfigError
from service.store.models import Base
from service.store.session import (
    alembic_config,
    app_role_name,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    run_migrations,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
TABLES = {table.name for table in Base.metadata.sorted_tables}
TRIGGERS = {
    "postgresql": {
        "audit_events_no_update_delete",
        "audit_events_no_truncate",
        "user_schemas_freeze_used",
        "review_decisions_no_update",
    },
    "sqlite": {
        "audit_events_no_update",
        "audit_events_no_delete",
        "user_schemas_freeze_used",
        "review_decisions_no_update",
    },
}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        return {row[0] for row in rows}


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


@pytest.fixture(params=["postgres", "sqlite"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    make: Callable[[], str] = request.getfixturevalue("pg_database")
    return make()


def test_upgrade_downgrade_round_trip(fresh_url: str, app_role: str) -> None:
    engine = make_engine(fresh_url)
    try:
        run_migrations(fresh_url, app_role=app_role)
        assert _tables(engine) == TABLES
        assert current_revision(engine) == head_revision()
        assert _drift(engine) == []
        assert _triggers(engine) == TRIGGERS[engine.dialect.name]

        downgrade(fresh_url, "base", app_role=app_role)
        assert _tables(engine) == set()
        assert _triggers(engine) == set()
        assert current_revision(engine) is None

        # One step at a time, so every revision's downgrade is exercised on its own too.
        for _ in range(5):
            run_migrations(fresh_url, "+1", app_role=app_role)
        assert current_revision(engine) == head_revision()
        downgrade(fresh_url, "-1", app_role=app_role)  # 0005: review decisions gone, with their trigger
        assert _tables(engine) == TABLES - {"review_decisions"}
        assert "review_decisions_no_update" not in _triggers(engine)
        downgrade(fresh_url, "-1", app_role=app_role)  # 0004: batches and webhooks gone, jobs keeps its rows' shape
        assert _tables(engine) == TABLES - {"batches", "batch_items", "webhook_deliveries", "review_decisions"}
        assert "webhook_url" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
        downgrade(fresh_url, "-1", app_role=app_role)
        if engine.dialect.name == "postgresql":
            assert not _has_privilege(engine, app_role, "jobs", "SELECT")  # 0003's grants are gone
        for _ in range(2):
            downgrade(fresh_url, "-1", app_role=app_role)
        assert _tables(engine) == set()

        run_migrations(fresh_url, app_role=app_role)
        assert _drift(engine) == []
    finally:
        engine.dispose()


def _has_privilege(engine: Engine, role: str, table: str, privilege: str) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.scalar(
                text("SELECT has_table_privilege(:role, :table, :privilege)"),
                {"role": role, "table": table, "privilege": privilege},
            )
        )


def test_app_role_privileges(pg_engine: Engine, app_role: str) -> None:
    def can(table: str, privilege: str) -> bool:
        return _has_privilege(pg_engine, app_role, table, privilege)

    assert can("audit_events", "SELECT") and can("audit_events", "INSERT")
    for privilege in ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"):
        assert not can("audit_events", privilege), privilege
    for table in (
        "tenants",
        "documents",
        "jobs",
        "outbox",
        "user_schemas",
        "batches",
        "batch_items",
        "webhook_deliveries",
    ):
        assert all(can(table, p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE")), table
        assert not can(table, "TRUNCATE"), table
    # Review decisions are appended, never rewritten: the app may read and add, nothing more.
    assert can("review_decisions", "SELECT") and can("review_decisions", "INSERT")
    for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
        assert not can("review_decisions", privilege), privilege
    assert can("alembic_version", "SELECT") and not can("alembic_version", "UPDATE")
    with pg_engine.connect() as connection:
        query = "SELECT NOT rolsuper AND NOT rolcanlogin AND NOT rolbypassrls FROM pg_roles WHERE rolname = :r"
        assert connection.scalar(text(query), {"r": app_role})


def test_alembic_ini_reads_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`alembic upgrade head` from the shell: no URL in the ini, ABSTRACTOR_DATABASE_URL decides."""
    url = f"sqlite:///{tmp_path / 'from_env.db'}"
    monkeypatch.setenv("ABSTRACTOR_DATABASE_URL", url)
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    engine = make_engine(url)
    try:
        assert _tables(engine) == TABLES
    finally:
        engine.dispose()


def test_offline_sql_for_postgres(capsys: pytest.CaptureFixture[str]) -> None:
    """DBAs who apply scripts by hand get the triggers and grants in the SQL too."""
    config = alembic_config("postgresql+psycopg://nobody@localhost/none", app_role="custom_role")
    command.upgrade(config, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE audit_events" in sql
    assert "BEFORE TRUNCATE ON audit_events" in sql
    assert 'GRANT SELECT, INSERT ON audit_events TO "custom_role"' in sql


@pytest.mark.parametrize("name", ["abstractor_app", "app_2"], ids=["default", "digits"])
def test_role_name_accepted(name: str) -> None:
    assert app_role_name(name) == name


@pytest.mark.parametrize(
    "name",
    ['x"; DROP TABLE jobs; --', "Upper", "1starts_with_digit", "a" * 64],
    ids=["injection", "upper", "digit", "long"],
)
def test_role_name_rejected(name: str) -> None:
    with pytest.raises(StoreConfigError):
        app_role_name(name)
