"""`serve` as a newcomer runs it: its own process, SQLite in a temporary directory, no other server.

The README's curl session is run exactly as written (bash, curl, python3). Plumbing runs on the
deterministic test engine; one slow test runs the real embedded model end to end through the API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.api import extract_and_wait, make_tenant, upload
from tests.support.records import assert_confidence_for_every_stated_value
from tests.support.servers import REPO, ServeProcess, serve_env

ADMIN_TOKEN = "dev-admin-token"
README = REPO / "README.md"
SECTION = "\n## REST API (embedded mode)\n"
SESSION_MARK = "<!-- curl-session"


def readme_session() -> str:
    """The bash block right after the curl-session marker in the README's REST API section."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"section {SECTION.strip()!r} not found in README.md"
    section = text[text.index(SECTION) + len(SECTION) :]
    section = section[: section.find("\n## ")] if "\n## " in section else section
    assert SESSION_MARK in section, "curl-session marker not found in the README's REST API section"
    match = re.search(r"```bash\n(.*?)```", section[section.index(SESSION_MARK) :], re.DOTALL)
    assert match, "curl session block not found in the README's REST API section"
    return match.group(1)


def _env(tmp_path: Path) -> dict[str, str]:
    return serve_env(tmp_path / "var", ADMIN_TOKEN)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_session_works_as_written(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with ServeProcess(env, log_path=tmp_path / "serve.log") as server:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", readme_session()],
            cwd=tmp_path,
            env={**server.env, "BASE": server.base_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr + (tmp_path / "serve.log").read_text()
        record = json.loads(run.stdout)
        assert record["status"] == "succeeded", record
        assert record["schema_name"] == "clinical_note"
        assert set(record["result"]) >= {"data", "evidence", "flags", "model"}
        ready = httpx.get(f"{server.base_url}/readyz").json()
        assert ready == {"status": "ready", "checks": {"database": "ok", "broker": "skipped", "worker": "ok"}}
    assert (tmp_path / "var" / "abstractor.db").is_file()  # SQLite, migrated by serve itself


@pytest.mark.slow
@pytest.mark.model
def test_real_embedded_model_end_to_end(tmp_path: Path, model_cache: Path) -> None:
    env = {**_env(tmp_path), "ABSTRACTOR_DATA_DIR": str(tmp_path / "var")}
    # Reuse the checkout's model cache rather than assembling the model again under tmp.
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "models").symlink_to(model_cache, target_is_directory=True)
    with ServeProcess(env, engine="real", log_path=tmp_path / "serve.log") as server:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            tenant = make_tenant(client, ADMIN_TOKEN)
            note = b"Chief complaint: cough for two weeks.\n58-year-old male.\nAssessment: acute bronchitis.\n"
            document = upload(client, tenant, note)
            job = extract_and_wait(client, tenant, document["id"], schema="clinical_note", timeout=400)
    assert job["status"] == "succeeded", (job, (tmp_path / "serve.log").read_text()[-3000:])
    assert job["result"]["model"]["engine"] == "llamacpp"
    assert job["model"] == job["result"]["model"]["model"]
    assert isinstance(job["result"]["data"], dict) and job["timings"]["engine_calls"] >= 1
    assert_confidence_for_every_stated_value(job["result"])
