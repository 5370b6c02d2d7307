"""Restart recovery: what a killed `abstractor serve` was running ends succeeded or failed after a restart.

The first serve's engine never answers, so its job is surely running when the process gets SIGKILL; the
second serve (a deterministic engine) must settle that job — requeued with its attempt counted, then run —
instead of leaving it `running` forever. A second serve on the same data folder is refused while one runs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.service.api.conftest import ADMIN_TOKEN
from tests.support.api import make_tenant, upload, wait_for_job
from tests.support.servers import REPO, ServeProcess, free_port, serve_env

NOTES = [f"Chief complaint: cough for {n} weeks.\n58-year-old male.\n".encode() for n in (2, 3, 4)]


def _env(tmp_path: Path) -> dict[str, str]:
    return serve_env(tmp_path / "var", ADMIN_TOKEN)


def _submit(client: httpx.Client, headers: dict[str, str], document_id: str) -> str:
    response = client.post(
        "/v1/extractions", json={"document_id": document_id, "schema_name": "clinical_note"}, headers=headers
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_jobs_running_when_serve_is_killed_end_after_a_restart(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = ServeProcess(env, engine="stalled", log_path=tmp_path / "serve-1.log")
    with first as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        tenant = make_tenant(client, ADMIN_TOKEN)
        jobs = [_submit(client, tenant.headers, upload(client, tenant, note)["id"]) for note in NOTES]
        deadline = time.monotonic() + 120
        status = ""
        while status != "running" and time.monotonic() < deadline:
            status = client.get(f"/v1/extractions/{jobs[0]}", headers=tenant.headers).json()["status"]
            time.sleep(0.1)
        assert status == "running"

        # While it runs, a second serve on the same data folder is refused, loudly.
        second = subprocess.run(
            [sys.executable, "-m", "tests.support.embedded_server", "--port", str(free_port())],
            cwd=REPO,
            env=first.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        assert "ServeAlreadyRunning" in second.stderr

        assert first.proc is not None
        first.proc.kill()  # SIGKILL: no shutdown code runs
        first.proc.wait(timeout=30)

    with (
        ServeProcess(env, log_path=tmp_path / "serve-2.log") as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        settled = [wait_for_job(client, tenant, job_id, timeout=120) for job_id in jobs]
    assert [job["status"] for job in settled] == ["succeeded"] * len(jobs), settled
    # The killed run counted: the job that was running ran twice; the others once.
    assert [job["attempts"] for job in settled] == [2, 1, 1]
