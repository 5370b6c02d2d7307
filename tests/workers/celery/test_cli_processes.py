"""`abstractor api`, `abstractor relay` and `abstractor worker` as real processes, configured by environment.

The worker here is the real command with the configured engine (llama.cpp); the documents are
broken PDFs, which fail while being read, before any model is loaded, so the whole production path
(API → outbox → relay → Redis → worker → store) runs in seconds without the model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.store.models import JobStatus
from tests.support.api import make_tenant, wait_for_job
from tests.support.servers import REPO, free_port, wait_until_up
from tests.workers.celery.harness import add_jobs, job, settings_env, wait_until

ADMIN_TOKEN = "celery-cli-admin-token-9d2c4e6f8a1b"
BROKEN_PDF = b"%PDF-1.7\nthis is no pdf at all\n"


def _command(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


@pytest.fixture(scope="module")
def env(settings: Settings, broker: redis.Redis) -> dict[str, str]:
    """The processes' environment: the module's settings plus an admin token, no .env file involved."""
    return {**os.environ, **settings_env(settings), "ABSTRACTOR_ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture(scope="module")
def cli_worker(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """`abstractor worker` (the configured engine, loaded only when a job needs it)."""
    proc = _command(["worker", "--concurrency", "1"], env, tmp_path_factory.mktemp("cli") / "worker.log")
    yield proc
    assert _stop(proc) == 0  # a warm shutdown on SIGTERM


def test_api_with_its_relay_and_the_worker_command_run_a_job(
    env: dict[str, str], cli_worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    port = free_port()
    api = _command(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, timeout=60, proc=api)
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            tenant = make_tenant(client, ADMIN_TOKEN)
            document = client.post(
                "/v1/documents", files={"file": ("broken.pdf", BROKEN_PDF)}, headers=tenant.headers
            ).json()
            submitted = client.post(
                "/v1/extractions", json={"document_id": document["id"], "schema_name": "nda"}, headers=tenant.headers
            )
            assert submitted.status_code == 202, submitted.text
            settled = wait_for_job(client, tenant, submitted.json()["id"], timeout=60)
            assert (settled["status"], settled["error"]["code"], settled["attempts"]) == ("failed", "invalid_pdf", 1)
            assert client.get("/readyz").json()["checks"]["broker"] == "ok"
    finally:
        # uvicorn re-raises SIGTERM once it has shut down gracefully.
        assert _stop(api) in (0, -signal.SIGTERM), (tmp_path / "api.log").read_text()[-3000:]
    assert "Application shutdown complete" in (tmp_path / "api.log").read_text()
    assert BROKEN_PDF.decode().splitlines()[1] not in (tmp_path / "api.log").read_text()


def test_the_relay_command_publishes_what_the_store_queued(
    env: dict[str, str], cli_worker: subprocess.Popen[bytes], factory: sessionmaker[Session], tmp_path: Path
) -> None:
    relay = _command(["relay"], env, tmp_path / "relay.log")
    try:
        _, job_ids = add_jobs(
            factory, [BROKEN_PDF + uuid.uuid4().hex.encode() for _ in range(3)], media_type="application/pdf"
        )
        wait_until(lambda: all(job(factory, j).status is JobStatus.FAILED for j in job_ids), 60, "three failed jobs")
        assert {job(factory, j).error_code for j in job_ids} == {"invalid_pdf"}
    finally:
        assert _stop(relay) == 0, (tmp_path / "relay.log").read_text()[-3000:]


def test_worker_without_a_broker_is_one_json_error(tmp_path: Path, env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if k != "ABSTRACTOR_BROKER_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker"], cwd=REPO, env=bare, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b'"code": "no_broker"' in done.stderr.splitlines()[-1]
