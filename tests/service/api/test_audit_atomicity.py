"""If the audit write fails, the action fails: nothing is stored that the trail does not record.

A real failure, not a mock: in a database of its own, the app role loses INSERT on audit_events.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text

from service.api import create_app
from service.store.session import make_engine, make_session_factory, run_migrations
from tests.service.api.conftest import ADMIN_TOKEN, api_settings_for
from tests.support.api import make_tenant, upload
from tests.support.servers import ThreadedServer


def test_upload_and_reads_fail_when_the_audit_cannot_be_written(
    pg_database: Callable[[], str], app_role: str, tmp_path: Path
) -> None:
    url = pg_database()
    run_migrations(url, app_role=app_role)
    engine = make_engine(url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _as_app_role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{app_role}"')

    owner = make_engine(url)
    app = create_app(api_settings_for(url, tmp_path), session_factory=make_session_factory(engine))
    try:
        with ThreadedServer(app) as server, httpx.Client(base_url=server.base_url) as client:
            tenant = make_tenant(client, ADMIN_TOKEN)
            stored = upload(client, tenant, b"Audited before the outage.\n")
            with owner.begin() as connection:
                connection.execute(text(f'REVOKE INSERT ON audit_events FROM "{app_role}"'))

            refused = client.post(
                "/v1/documents", files={"file": ("b.txt", b"Never stored.\n")}, headers=tenant.headers
            )
            assert refused.status_code == 500
            assert refused.json() == {"error": {"code": "internal_error", "message": "internal error", "details": {}}}
            read = client.get(f"/v1/documents/{stored['id']}", headers=tenant.headers)
            assert read.status_code == 500  # an unaudited read is no read
    finally:
        with owner.begin() as connection:
            connection.execute(text(f'GRANT INSERT ON audit_events TO "{app_role}"'))
            documents = connection.execute(text("SELECT count(*) FROM documents")).scalar()
        owner.dispose()
        engine.dispose()
    assert documents == 1
