"""Failed authentication: throttled per client address (429 with Retry-After), audited once per window.

Each test runs its own server (the counts live in the API process) with a small limit and window,
configured as `abstractor serve` configures uvicorn, so X-Forwarded-For is believed from nobody.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from service.api.throttle import AuthThrottle
from service.processes.embedded import build_embedded_app
from service.store.session import make_engine, make_session_factory
from tests.service.api.conftest import ADMIN_TOKEN, api_settings_for
from tests.support.api import TenantKey, make_tenant
from tests.support.engines import DeterministicEngine
from tests.support.servers import ThreadedServer

LIMIT = 5
WINDOW_S = 4.0  # long enough for a loaded machine to send the few requests of one test


@pytest.fixture
def limited(api_db: Engine, api_pg_url: str, tmp_path: Any) -> Iterator[Callable[..., ThreadedServer]]:
    """Start a fresh throttled server on demand (stopped at the end of the test)."""
    started: list[ThreadedServer] = []

    def start(window_s: float = WINDOW_S) -> ThreadedServer:
        settings = api_settings_for(api_pg_url, tmp_path, auth_failure_limit=LIMIT, auth_failure_window_s=window_s)
        app = build_embedded_app(
            settings, engine=DeterministicEngine(), session_factory=make_session_factory(api_db), poll_s=0.2
        )
        server = ThreadedServer(app, settings=settings).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
def failure_rows(api_pg_url: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """`auth.*` audit rows written since the test began (read as the superuser)."""
    engine = make_engine(api_pg_url)
    with engine.connect() as connection:
        since = connection.execute(text("SELECT coalesce(max(seq), 0) FROM audit_events")).scalar_one()

    def rows() -> list[dict[str, Any]]:
        with engine.connect() as connection:
            result = connection.execute(
                text("SELECT * FROM audit_events WHERE seq > :s AND action LIKE 'auth.%' ORDER BY seq"), {"s": since}
            )
            return [dict(r._mapping) for r in result]

    yield rows
    engine.dispose()


def _bad_key() -> dict[str, str]:
    return {"Authorization": f"Bearer abk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"}


def test_failures_past_the_limit_get_429_with_retry_after(limited: Callable[..., ThreadedServer]) -> None:
    server = limited()
    with httpx.Client(base_url=server.base_url) as client:
        tenant = make_tenant(client, ADMIN_TOKEN)
        for _ in range(LIMIT):
            assert client.get("/v1/schemas", headers=_bad_key()).status_code == 401
        started = time.monotonic()
        refused = client.get("/v1/schemas", headers=_bad_key())
        assert time.monotonic() - started < 1.0
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_auth_failures"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= WINDOW_S
        assert refused.json()["error"]["details"] == {"retry_after_s": retry_after}
        # While throttled: a good key waits too (else the 429 would be an oracle), spoofed addresses change
        # nothing, and a request without credentials is the plain 401 (there is nothing to guess with).
        assert client.get("/v1/schemas", headers=tenant.headers).status_code == 429
        spoofed = {**_bad_key(), "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
        assert client.get("/v1/schemas", headers=spoofed).status_code == 429
        wrong_admin = {"Authorization": "Bearer wrong"}
        assert client.post("/v1/admin/tenants", json={"name": "x"}, headers=wrong_admin).status_code == 429
        assert client.get("/v1/schemas").status_code == 401
        time.sleep(retry_after + 0.1)
        assert client.get("/v1/schemas", headers=tenant.headers).status_code == 200  # the window is over


def test_admin_and_key_failures_share_the_address_budget(limited: Callable[..., ThreadedServer]) -> None:
    server = limited()
    with httpx.Client(base_url=server.base_url) as client:
        for i in range(LIMIT):
            if i % 2:
                wrong = {"Authorization": "Bearer not-the-admin-token"}
                assert client.post("/v1/admin/tenants", json={"name": "x"}, headers=wrong).status_code == 401
            else:
                assert client.get("/v1/schemas", headers=_bad_key()).status_code == 401
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post("/v1/admin/tenants", json={"name": "x"}, headers=admin).status_code == 429


def test_a_burst_of_failures_is_one_audit_row_per_window(
    limited: Callable[..., ThreadedServer], failure_rows: Callable[[], list[dict[str, Any]]]
) -> None:
    server = limited(window_s=120.0)  # the whole burst in one window, however slow this machine is
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(200):
            status = client.get("/v1/schemas", headers=_bad_key()).status_code
            statuses[status] = statuses.get(status, 0) + 1
    assert statuses == {401: LIMIT, 429: 200 - LIMIT}
    assert failure_rows() == []  # nothing per try
    server.__exit__(None, None, None)  # the open window is audited at shutdown
    rows = failure_rows()
    assert len(rows) == 1, rows
    [row] = rows
    assert (row["action"], row["outcome"], row["actor"], row["target_type"], row["target_id"]) == (
        "auth.failures",
        "denied",
        "anonymous",
        "client",
        "127.0.0.1",
    )
    details = row["details"]
    assert details["api_key_failures"] == LIMIT and details["admin_failures"] == 0
    assert details["throttled"] == 200 - LIMIT and details["window_s"] == 120


def test_a_closed_window_is_audited_by_the_next_request(
    limited: Callable[..., ThreadedServer], failure_rows: Callable[[], list[dict[str, Any]]]
) -> None:
    server = limited(window_s=1.0)
    with httpx.Client(base_url=server.base_url) as client:
        tenant = make_tenant(client, ADMIN_TOKEN)
        for _ in range(3):
            assert client.get("/v1/schemas", headers=_bad_key()).status_code == 401
        assert failure_rows() == []
        time.sleep(1.2)
        assert client.get("/v1/schemas", headers=tenant.headers).status_code == 200
        [row] = failure_rows()  # written while the server runs, once the window is over
        assert row["details"]["api_key_failures"] == 3
        for _ in range(2):  # a new window, a new row later
            assert client.get("/v1/schemas", headers=_bad_key()).status_code == 401
        assert len(failure_rows()) == 1


def test_open_windows_are_audited_when_the_server_stops(
    limited: Callable[..., ThreadedServer], failure_rows: Callable[[], list[dict[str, Any]]]
) -> None:
    server = limited()
    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(2):
            assert client.get("/v1/schemas", headers=_bad_key()).status_code == 401
    assert failure_rows() == []
    server.__exit__(None, None, None)
    [row] = failure_rows()
    assert row["details"]["api_key_failures"] == 2 and row["details"]["throttled"] == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_windows_by_address() -> None:
    clock = _Clock()
    throttle = AuthThrottle(3, 10.0, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a", "api_key")
    assert throttle.retry_after("a") == 10 and throttle.retry_after("b") is None
    clock.now += 4.5
    assert throttle.retry_after("a") == 6
    assert throttle.closed() == []
    clock.now += 6
    assert throttle.retry_after("a") is None  # a new window
    [closed] = throttle.closed()
    assert (closed.client, closed.failures["api_key"], closed.throttled) == ("a", 3, 2)


def test_throttle_tracks_a_bounded_number_of_addresses() -> None:
    throttle = AuthThrottle(3, 60.0, max_clients=2, clock=_Clock())
    for client in ("a", "b", "c"):
        throttle.failed(client, "admin")
    assert [w.client for w in throttle.closed()] == ["a"]  # closed early to make room, still audited
    assert sorted(w.client for w in throttle.closed(everything=True)) == ["b", "c"]
    assert throttle.closed(everything=True) == []


def test_throttle_keeps_windows_it_could_not_audit() -> None:
    throttle = AuthThrottle(3, 60.0, clock=_Clock())
    throttle.failed("a", "api_key")
    windows = throttle.closed(everything=True)
    throttle.restore(windows)
    assert [w.client for w in throttle.closed()] == ["a"]


def test_tenant_fixture_is_unaffected(tenant_a: TenantKey, client: httpx.Client) -> None:
    # The shared server of the other API tests keeps a limit no test reaches.
    assert client.get("/v1/schemas", headers=tenant_a.headers).status_code == 200
