"""Webhook tests: a real receiver on 127.0.0.1, and the API (embedded worker, Postgres as the app role)
with a signing secret, 127.0.0.1 allow-listed, and a webhook deliverer thread beside it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.api import create_app
from service.processes.embedded import build_embedded_app
from service.store.session import make_session_factory
from tests.service.api.conftest import (  # noqa: F401 - shared fixtures
    ADMIN_TOKEN,
    api_db,
    api_pg_url,
    api_settings_for,
    app_role,
    data_dir,
    pg_admin,
    pg_database,
)
from tests.support.api import TenantKey, make_tenant
from tests.support.engines import DeterministicEngine
from tests.support.servers import ThreadedServer

SECRET = "whsec-test-5b0f3c9e1d7a4f2b8c6e0a9d"
MAX_ATTEMPTS = 2
BACKOFF_S = 0.2


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A plain HTTP server on 127.0.0.1 that records every POST and answers from a script (default 204)."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Received]:
        """Block until at least `n` requests arrived; returns them all."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"receiver got {len(self.requests)} requests, wanted {n}")


def _start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, headers = receiver.script.pop(0) if receiver.script else (204, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # keep test output quiet; the requests are recorded above

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
    return receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh receiver per test."""
    r = _start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    """A second receiver (where a redirect would lead)."""
    r = _start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(scope="session")
def factory(api_db: Engine) -> sessionmaker[Session]:  # noqa: F811
    """Sessions as the app role."""
    return make_session_factory(api_db)


@pytest.fixture(scope="session")
def hook_server(factory: sessionmaker[Session], api_pg_url: str, data_dir: Path) -> Iterator[ThreadedServer]:  # noqa: F811
    """The API + embedded worker with webhooks on (127.0.0.1 allow-listed); the app runs its own deliverer."""
    settings = api_settings_for(
        api_pg_url,
        data_dir,
        webhook_secret=SECRET,
        webhook_allow_hosts=["127.0.0.1"],
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_backoff_s=BACKOFF_S,
    )
    app = build_embedded_app(settings, engine=DeterministicEngine(), session_factory=factory, poll_s=0.2)
    with ThreadedServer(app) as running:
        yield running


@pytest.fixture(scope="session")
def guarded_server(factory: sessionmaker[Session], api_pg_url: str, data_dir: Path) -> Iterator[ThreadedServer]:  # noqa: F811
    """The API with webhooks on and nothing allow-listed (no worker: only submissions are tested)."""
    settings = api_settings_for(api_pg_url, data_dir, webhook_secret=SECRET)
    with ThreadedServer(create_app(settings, session_factory=factory)) as running:
        yield running


@pytest.fixture
def hook_client(hook_server: ThreadedServer) -> Iterator[httpx.Client]:
    """A client of the webhook-enabled server."""
    with httpx.Client(base_url=hook_server.base_url, timeout=30.0) as c:
        yield c


@pytest.fixture
def hook_tenant(hook_client: httpx.Client) -> TenantKey:
    """A fresh tenant on it."""
    return make_tenant(hook_client, ADMIN_TOKEN)
