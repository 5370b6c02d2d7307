"""The batch API tests reuse the API's server on Postgres (embedded worker, deterministic engine)."""

from tests.service.api.conftest import (  # noqa: F401 - shared fixtures
    api_db,
    api_pg_url,
    app_role,
    client,
    data_dir,
    pg_admin,
    pg_database,
    server,
    tenant_a,
    tenant_b,
)
