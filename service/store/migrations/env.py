"""Alembic environment: the URL comes from the config attributes or `ABSTRACTOR_DATABASE_URL`."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from service.store.models import Base
from service.store.session import app_role_name, database_url, make_engine

config = context.config
target_metadata = Base.metadata

# Programmatic callers (run_migrations) pass no ini file and keep their own logging.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Migrations read the role name here, so `alembic upgrade` from the shell honours the env var too.
config.attributes["app_role"] = app_role_name(config.attributes.get("app_role"))


def _url() -> str:
    explicit = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url") or None
    return database_url(explicit)


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by copy-and-move; with our BEGIN listener its DDL is transactional too.
        render_as_batch=sqlite,
        transactional_ddl=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`) for DBAs who apply scripts by hand."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live database, on a connection the caller lent us or on our own engine."""
    lent = config.attributes.get("connection")
    if isinstance(lent, Connection):
        _configure(lent)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
