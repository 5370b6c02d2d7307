"""Real Celery workers as child processes, the real Redis, and store helpers for the queue tests.

The tests use their own Redis database (5, or `ABSTRACTOR_TEST_REDIS_URL`: two checkouts testing at once
on one Redis server each take their own) so that other suites on DB 0 never see our messages, and flush
only that one. Workers are `tests.workers.celery.worker_main` children (the `abstractor worker`
code path with a deterministic engine); each runs in its own session so that the whole worker (the
Celery parent and its pool processes) can be SIGKILLed at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.store import repositories as repo
from service.store.models import AuditEvent, Job, JobStatus, Result

REPO = Path(__file__).resolve().parents[3]
JOB_ENDS = ("job succeeded", "job failed", "job skipped")
"""The records `workers.jobs.run_job` ends a run with."""
REDIS_URL = os.environ.get("ABSTRACTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
SERVICES_UP = REPO / "scripts" / "services-up"

# Short limits so that lost workers are noticed in seconds: deadline = start + 3 s + 1 s.
QUEUE_SETTINGS: dict[str, Any] = {
    "task_soft_time_limit_s": 2.0,
    "task_time_limit_s": 3.0,
    "job_deadline_margin_s": 1.0,
    "broker_visibility_timeout_s": 6.0,
    "broker_health_check_s": 2.0,
    "retry_backoff_s": 0.5,
    "relay_poll_s": 0.2,
    "reconcile_interval_s": 0.5,
    "queued_timeout_s": 8.0,
    "outbox_lease_s": 5.0,
}


def queue_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a worker or relay under test (no .env file)."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "data_dir": data_dir,
        "broker_url": REDIS_URL,
        "ocr_enabled": False,
        "log_level": "INFO",
        **QUEUE_SETTINGS,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as ABSTRACTOR_* variables, for a child process."""
    names = ["environment", "database_url", "data_dir", "broker_url", "ocr_enabled", "log_level", *QUEUE_SETTINGS]
    return {f"ABSTRACTOR_{n.upper()}": str(getattr(settings, n)) for n in names}


def redis_up(url: str = REDIS_URL) -> bool:
    """Whether Redis answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def ensure_redis_running(timeout: float = 20.0) -> None:
    """Start Redis the way the project does (scripts/services-up) if it is down, and wait for it."""
    deadline = time.monotonic() + timeout
    while not redis_up():
        subprocess.run(["bash", str(SERVICES_UP)], check=False, capture_output=True, timeout=30)
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not come back")
        time.sleep(0.2)


def stop_redis() -> None:
    """Shut the real Redis down without saving (it keeps nothing on disk: everything queued is lost)."""
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
        check=False,
        capture_output=True,
        timeout=10,
    )
    deadline = time.monotonic() + 10
    while redis_up() and time.monotonic() < deadline:
        time.sleep(0.05)
    if redis_up():
        raise RuntimeError("Redis did not stop")


def children_of(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


class WorkerProcess:
    """One `worker_main` child in its own session, logging to a file."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        delay_s: float = 0.0,
        name: str = "w",
        pool: str = "prefork",
        concurrency: int = 1,
    ) -> None:
        self.env = {**os.environ, **settings_env(settings)}
        self.log_path = log_path
        self.delay_s = delay_s
        self.name = name
        self.pool = pool
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._seen = 0  # log lines at the last kill: a run it cut short ends no record

    def start(self) -> WorkerProcess:
        """Start (or restart) the worker; returns at once (it connects on its own)."""
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "tests.workers.celery.worker_main",
                    "--delay", str(self.delay_s), "--hostname", f"{self.name}-{self.starts}@%h",
                    "--pool", self.pool, "--concurrency", str(self.concurrency),
                ],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.starts += 1
        return self

    def alive(self) -> bool:
        """Whether the Celery parent process runs."""
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """Whether the latest start has connected and is consuming (its "<hostname> ready." record)."""
        hostname = f"{self.name}-{self.starts - 1}@"
        return self.alive() and any(str(r.get("msg", "")).startswith(hostname) for r in self.records())

    def busy(self) -> bool:
        """Whether the worker is mid-job: its last job record since the last kill is a start (attempt counted)."""
        events = [r.get("msg") for r in self.records(since=self._seen)]
        started = max((i for i, msg in enumerate(events) if msg == "job started"), default=-1)
        ended = max((i for i, msg in enumerate(events) if msg in JOB_ENDS), default=-1)
        return self.ready() and started > ended

    def records(self, msg: str | None = None, *, since: int = 0) -> list[dict[str, Any]]:
        """The worker's structured log records (its JSON lines, from line `since` on), or one message's.

        The worker's events are read by their fields (message, job id), never by the text of a line.
        """
        out = []
        for line in self.log_text().splitlines()[since:]:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # Celery's banner, a partly written last line
            if isinstance(record, dict) and (msg is None or record.get("msg") == msg):
                out.append(record)
        return out

    def kill_pool_process(self) -> bool:
        """SIGKILL the pool process that runs tasks (the Celery parent forks a new one); False if none."""
        children = children_of(self.proc.pid) if self.alive() and self.proc is not None else []
        self._seen = len(self.log_text().splitlines())
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        return bool(children)

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and pool) at once, as the OOM killer or a node loss would."""
        assert self.proc is not None
        self._seen = len(self.log_text().splitlines())
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it had died already (e.g. a document killed it)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (warm shutdown), then SIGKILL the group if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        """Everything the worker has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def add_jobs(
    factory: sessionmaker[Session], contents: list[bytes], *, model: str = "first-word", media_type: str = "text/plain"
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A tenant, its text documents, and one queued job + outbox row each, committed as the API does."""
    job_ids = []
    with factory.begin() as session:
        tenant = repo.create_tenant(session, f"celery-{uuid.uuid4().hex[:8]}")
        tenant_id = tenant.id
        for content in contents:
            document, _ = repo.add_document(session, tenant.id, content, media_type=media_type)
            job, created = repo.create_job(
                session, tenant.id, document.id, schema_name="nda", schema_version=1, model=model, backend="test"
            )
            assert created
            repo.add_outbox(session, job.id)
            job_ids.append(job.id)
    return tenant_id, job_ids


def statuses(factory: sessionmaker[Session], job_ids: list[uuid.UUID]) -> dict[JobStatus, int]:
    """How many of these jobs are in each status."""
    with factory() as session:
        rows = session.execute(select(Job.status, func.count()).where(Job.id.in_(job_ids)).group_by(Job.status)).all()
    return {status: int(n) for status, n in rows}


def job(factory: sessionmaker[Session], job_id: uuid.UUID) -> Job:
    """A fresh copy of a job row."""
    with factory() as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row


def actions(factory: sessionmaker[Session], job_id: uuid.UUID) -> list[str]:
    """The audit trail's actions about a job, in order."""
    with factory() as session:
        return list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.target_id == str(job_id)).order_by(AuditEvent.seq)
            )
        )


def result_count(factory: sessionmaker[Session], job_id: uuid.UUID) -> int:
    """Result rows of a job (the schema allows one; counted to prove it)."""
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Result).where(Result.job_id == job_id)) or 0)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll `predicate` until true, or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
