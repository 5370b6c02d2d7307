"""The API over real Postgres (a throwaway database for the session, as the app role) behind a real
uvicorn on 127.0.0.1, with the embedded worker running jobs on the deterministic test engine."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, text

from service.config import Settings
from service.processes.embedded import build_embedded_app
from service.store.session import make_engine, make_session_factory, run_migrations
from tests.service.store.conftest import app_role, pg_admin, pg_database  # noqa: F401 - shared fixtures
from tests.support.api import TenantKey, make_tenant
from tests.support.engines import DeterministicEngine
from tests.support.servers import ThreadedServer

ADMIN_TOKEN = "test-admin-token-2f8e1c7d9a4b6e3f"
REDIS_URL = "redis://127.0.0.1:6379/0"
UPLOAD_LIMIT = 2 * 1024 * 1024


def api_settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test server: no .env file, test environment, a small upload limit."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "broker_url": REDIS_URL,
        "max_document_bytes": UPLOAD_LIMIT,
        "log_level": "INFO",
        # Every test client is 127.0.0.1: the suite's deliberate bad keys would throttle the shared server.
        # tests/service/api/test_auth_rate_limit.py runs its own servers with small limits.
        "auth_failure_limit": 100_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def api_pg_url(pg_database: Callable[[], str], app_role: str) -> str:  # noqa: F811
    """A migrated Postgres database for the API tests (committed to; dropped at the end of the run)."""
    url = pg_database()
    run_migrations(url, app_role=app_role)
    return url


@pytest.fixture(scope="session")
def api_db(api_pg_url: str, app_role: str) -> Iterator[Engine]:  # noqa: F811
    """The service's engine: every connection acts as the app role (INSERT/SELECT only on the audit trail)."""
    engine = make_engine(api_pg_url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _as_app_role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{app_role}"')

    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's data directory (upload temp files live under it)."""
    return tmp_path_factory.mktemp("api-data")


@pytest.fixture(scope="session")
def server(api_db: Engine, api_pg_url: str, data_dir: Path) -> Iterator[ThreadedServer]:
    """The API with its embedded worker on Postgres, served by uvicorn on a free loopback port."""
    settings = api_settings_for(api_pg_url, data_dir)
    app = build_embedded_app(
        settings, engine=DeterministicEngine(), session_factory=make_session_factory(api_db), poll_s=0.2
    )
    with ThreadedServer(app) as running:
        yield running


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[httpx.Client]:
    """An HTTP client pointed at the server."""
    with httpx.Client(base_url=server.base_url, timeout=30.0) as c:
        yield c


@pytest.fixture
def tenant_a(client: httpx.Client) -> TenantKey:
    """A fresh tenant with a key."""
    return make_tenant(client, ADMIN_TOKEN)


@pytest.fixture
def tenant_b(client: httpx.Client) -> TenantKey:
    """Another fresh tenant with a key."""
    return make_tenant(client, ADMIN_TOKEN)


@pytest.fixture
def audit_rows(api_pg_url: str) -> Callable[..., list[dict[str, Any]]]:
    """Audit events matching column filters, read as the superuser."""
    engine = make_engine(api_pg_url)

    def rows(**where: Any) -> list[dict[str, Any]]:
        clauses = " AND ".join(f"{k} = :{k}" for k in where) or "TRUE"
        with engine.connect() as connection:
            result = connection.execute(text(f"SELECT * FROM audit_events WHERE {clauses} ORDER BY seq"), where)
            return [dict(r._mapping) for r in result]

    return rows


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log record of the in-process server, rendered with its arguments and extras."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s %(__dict__)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield sink
    root.removeHandler(handler)
