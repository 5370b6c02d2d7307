"""Fixtures of the queue tests: a migrated Postgres database of their own, Redis DB 5, a relay thread."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.jobs.relay import Relay
from service.processes.production import make_relay
from service.store.session import make_engine, make_session_factory, run_migrations
from tests.service.store.conftest import app_role, pg_admin, pg_database  # noqa: F401 - shared fixtures
from tests.workers.celery.harness import REDIS_URL, ensure_redis_running, queue_settings, redis_up


@pytest.fixture(scope="session")
def broker() -> Iterator[redis.Redis]:
    """Our Redis database, emptied before and after (never DB 0, which other suites use)."""
    if not redis_up():
        if os.environ.get("CI"):
            ensure_redis_running()
        else:
            pytest.skip("Redis not reachable at 127.0.0.1:6379")
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    ensure_redis_running()
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def queue_db(pg_database: Callable[[], str], app_role: str) -> str:  # noqa: F811
    """A migrated Postgres database for one test module (dropped at the end of the run)."""
    url = pg_database()
    run_migrations(url, app_role=app_role)
    return url


@pytest.fixture(scope="module")
def factory(queue_db: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the module's database, as its owner."""
    engine = make_engine(queue_db)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def settings(queue_db: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings shared by the module's workers and relay."""
    return queue_settings(queue_db, tmp_path_factory.mktemp("queue-data"))


@pytest.fixture
def relay(settings: Settings, factory: sessionmaker[Session], broker: redis.Redis) -> Iterator[Relay]:
    """The production relay and reconciler, running as a thread in the test process."""
    running = make_relay(settings, factory)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A folder for the workers' logs (shown when a test fails)."""
    return tmp_path
