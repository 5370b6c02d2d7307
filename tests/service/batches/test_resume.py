"""Acceptance: a batch over the Kleister-NDA archive, killed part-way, restarted, re-extracts nothing finished.

The batch runs as a real subprocess (`tests.support.batch_cli`: the CLI's own batch function with the
deterministic engine, since the real model takes 30-60 s a document) on an embedded SQLite store. The
test watches the store, kills the process once enough documents have finished, restarts it, and then
reads the audit trail: every job that had succeeded before the kill ran exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABSTRACTOR_")}
    env.update(
        {
            "ABSTRACTOR_DATABASE_URL": f"sqlite:///{tmp / 'store.db'}",
            "ABSTRACTOR_DATA_DIR": str(tmp / "var"),
            "ABSTRACTOR_LOG_LEVEL": "WARNING",
            "ABSTRACTOR_ENVIRONMENT": "test",
        }
    )
    return env


def _start(source: Path, tmp: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.batch_cli",
            str(source),
            "--schema",
            "nda",
            "--out",
            str(tmp / "out"),
            *extra,
        ],
        cwd=REPO,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _query(tmp: Path, sql: str) -> list[tuple[Any, ...]]:
    # Read-only and outside the service's BEGIN IMMEDIATE: watching must not hold the writer up.
    with closing(sqlite3.connect(f"file:{tmp / 'store.db'}?mode=ro", uri=True, timeout=30)) as connection:
        return connection.execute(sql).fetchall()


def _succeeded(tmp: Path) -> int:
    if not (tmp / "store.db").exists():
        return 0
    try:
        return int(_query(tmp, "SELECT count(*) FROM jobs WHERE status = 'succeeded'")[0][0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0


def _wait_for_succeeded(proc: subprocess.Popen[str], tmp: Path, n: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _succeeded(tmp) < n:
        assert proc.poll() is None, f"batch ended early: {proc.returncode} {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, "batch too slow"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _runs_per_job(tmp: Path) -> dict[str, int]:
    rows = _query(tmp, "SELECT target_id, count(*) FROM audit_events WHERE action = 'job.running' GROUP BY target_id")
    return {str(uuid.UUID(str(job_id))): int(n) for job_id, n in rows}


def _succeeded_jobs(tmp: Path) -> dict[str, str]:
    rows = _query(tmp, "SELECT id, updated_at FROM jobs WHERE status = 'succeeded'")
    return {str(uuid.UUID(str(job_id))): str(updated) for job_id, updated in rows}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def killed_proc() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started; any still alive at the end is killed (by its own id)."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_kleister_batch_killed_halfway_resumes_without_redoing_finished(
    kleister_dir: Path, tmp_path: Path, killed_proc: list[subprocess.Popen[str]]
) -> None:
    pdfs = sorted(kleister_dir.glob("*.pdf"))
    half = len(pdfs) // 2
    first = _start(kleister_dir, tmp_path)
    killed_proc.append(first)
    _wait_for_succeeded(first, tmp_path, half)
    first.send_signal(signal.SIGKILL)  # no clean-up of any kind: the worst interruption
    first.wait(timeout=30)
    done_before = _succeeded_jobs(tmp_path)
    assert half <= len(done_before) < len(pdfs)

    second = _start(kleister_dir, tmp_path)
    killed_proc.append(second)
    rc, out, err = _finish(second)
    assert rc == 0, err[-3000:]
    summary = json.loads(out.splitlines()[-1])
    assert summary["files"] == summary["documents"] == len(pdfs)  # labels.tsv is not a document
    assert summary["already_done"] == len(done_before)
    assert summary["new_jobs"] == 0  # every job was created by the first run; none twice
    assert (summary["succeeded"], summary["failed"], summary["waiting"]) == (len(pdfs), 0, 0)
    assert summary["requeued"] <= 1  # at most the document that was being extracted at the kill

    # Nothing that had finished ran again: one run each, untouched since the kill.
    runs = _runs_per_job(tmp_path)
    assert all(runs[job_id] == 1 for job_id in done_before)
    after = _succeeded_jobs(tmp_path)
    assert all(after[job_id] == updated for job_id, updated in done_before.items())
    assert sum(runs.values()) <= len(pdfs) + 1

    rows = _jsonl(Path(summary["exports"]["jsonl"]))
    assert len(rows) == len(pdfs)
    assert len({r["sha256"] for r in rows}) == len(pdfs)
    assert {r["name"] for r in rows} == {p.name for p in pdfs}
    assert all(r["status"] == "succeeded" and isinstance(r["data"], dict) for r in rows)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_duplicates_count_once(
    kleister_dir: Path, tmp_path: Path, killed_proc: list[subprocess.Popen[str]]
) -> None:
    archive = tmp_path / "archive"
    (archive / "sub").mkdir(parents=True)
    pdfs = sorted(kleister_dir.glob("*.pdf"))[:6]
    for pdf in pdfs:
        shutil.copy(pdf, archive / pdf.name)
    shutil.copy(pdfs[0], archive / "sub" / "copy-of-first.pdf")  # same bytes, another name
    shutil.copy(kleister_dir / "labels.tsv", archive / "labels.tsv")  # not a document type: not walked

    # Each remaining document takes at least 1.5 s: the interrupt lands with four of them still to run, even
    # when the poll below is held up behind the batch's writes.
    first = _start(archive, tmp_path, "--delay-s", "1.5")
    killed_proc.append(first)
    _wait_for_succeeded(first, tmp_path, 2)
    first.send_signal(signal.SIGINT)
    rc, _, err = _finish(first, timeout=60)
    assert rc == 130, err[-2000:]
    error = json.loads([ln for ln in err.splitlines() if ln.startswith('{"error"')][-1])["error"]
    assert error["code"] == "interrupted"
    done_before = _succeeded_jobs(tmp_path)
    assert 2 <= len(done_before) < len(pdfs)

    second = _start(archive, tmp_path)
    killed_proc.append(second)
    rc, out, err = _finish(second)
    assert rc == 0, err[-3000:]
    summary = json.loads(out.splitlines()[-1])
    assert (summary["files"], summary["documents"], summary["duplicates"]) == (7, 6, 1)
    assert summary["succeeded"] == 6 and summary["already_done"] == len(done_before)
    runs = _runs_per_job(tmp_path)
    assert all(runs[job_id] == 1 for job_id in done_before)
    assert sum(runs.values()) == 6 + summary["requeued"]

    rows = _jsonl(Path(summary["exports"]["jsonl"]))
    assert len(rows) == 6
    copies = {r["name"]: r["copies"] for r in rows}
    assert copies[pdfs[0].name] == 2 and sum(copies.values()) == 7
