"""`abstractor batch`, the batch driver: walk, deduplicate by sha256, enqueue, run or wait, resume, export.

In embedded mode (no `ABSTRACTOR_BROKER_URL`) this process is the worker: it claims the outbox rows
itself, one job at a time, and a job an interrupted run left `running` is requeued at the restart (one
worker per SQLite store). With a broker it only enqueues (outbox rows the relay publishes) and polls
until the batch settles. Either way the same command again resumes: finished documents are not re-run.

It is a process (it migrates the store, builds the engine and may be the worker), so it lives here and
not in `service.batches`, which the API imports for exports: a batch package importing the embedded
worker would close a loop batches → processes → api → batches.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service.batches.export import export_batch
from service.batches.progress import batch_counts
from service.batches.walk import discover, display_name, group_by_content
from service.config import Settings
from service.errors import BatchError
from service.jobs.identity import ModelRef, engine_ref, model_ref
from service.jobs.recovery import recover_interrupted, retry_failed
from service.jobs.resolve import resolve_schema
from service.jobs.submit import submit_batch_item
from service.processes.embedded import EmbeddedWorker
from service.runtime import engine_from
from service.store import repositories as repo
from service.store.models import Batch, JobStatus
from service.store.session import make_engine, make_session_factory, run_migrations
from workers.documents.errors import DocumentError
from workers.documents.sniff import SNIFF_BYTES, sniff_media_type
from workers.engines.protocol import Engine

log = logging.getLogger(__name__)

DEFAULT_TENANT = "local"
_SETTLED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


def counts(session_factory: sessionmaker[Session], batch_id: uuid.UUID) -> dict[str, int]:
    """Items per status, with `total` and `done` (succeeded + failed)."""
    with session_factory() as session:
        return batch_counts(session, batch_id)


@dataclass
class BatchSummary:
    """What `abstractor batch` prints last (one JSON object)."""

    batch_id: str
    source: str
    schema: str
    model: str
    files: int
    documents: int
    duplicates: int
    rejected: dict[str, int] = field(default_factory=dict)
    skipped_symlinks: int = 0
    already_done: int = 0
    new_jobs: int = 0
    requeued: int = 0
    retried: int = 0
    succeeded: int = 0
    failed: int = 0
    waiting: int = 0
    exports: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def symlinks_warning(self) -> dict[str, object]:
        """The stderr warning of skipped symlinks: a code and the count, never a path."""
        return {
            "code": "symlinks_skipped",
            "message": "symlinks leading out of the source were skipped; --follow-symlinks reads them",
            "details": {"skipped_symlinks": self.skipped_symlinks},
        }


ProgressFn = Callable[[int, int], None]


def _tenant_id(session_factory: sessionmaker[Session], name: str) -> uuid.UUID:
    with session_factory.begin() as session:
        tenant = repo.get_tenant_by_name(session, name)
        if tenant is None:
            tenant = repo.create_tenant(session, name)
        return tenant.id


def prepare_batch(
    session_factory: sessionmaker[Session],
    settings: Settings,
    source: str,
    schema: str,
    *,
    model: ModelRef,
    tenant: str = DEFAULT_TENANT,
    follow_symlinks: bool = False,
) -> tuple[Batch, BatchSummary]:
    """Walk and hash the source, store new documents, and enqueue every distinct one in the batch manifest.

    Symlinks leading out of the source are skipped and counted (`skipped_symlinks`) unless `follow_symlinks`.
    """
    started = time.perf_counter()
    key, files, skipped_symlinks = discover(source, follow_symlinks=follow_symlinks)
    if skipped_symlinks:
        log.warning("batch symlinks skipped", extra={"skipped_symlinks": skipped_symlinks})
    if not files:
        raise BatchError(f"no documents found in {source}", code="not_found")
    groups = group_by_content(files)
    tenant_id = _tenant_id(session_factory, tenant)
    with session_factory.begin() as session:
        choice = resolve_schema(session, tenant_id, schema)
        batch = repo.find_batch(
            session, tenant_id, source=key, schema_name=choice.name, schema_version=choice.version, model=model.model
        )
        if batch is None:
            batch = repo.create_batch(
                session,
                tenant_id,
                source=key,
                schema_name=choice.name,
                schema_version=choice.version,
                model=model.model,
                backend=model.backend,
            )
        else:
            repo.touch_batch(session, batch)
    summary = BatchSummary(
        batch_id=str(batch.id),
        source=key,
        schema=batch.schema_ref,
        model=batch.model,
        files=len(files),
        documents=0,
        duplicates=len(files) - len(groups),
        skipped_symlinks=skipped_symlinks,
    )
    for sha256, paths in groups.items():
        try:
            content = paths[0].read_bytes()
            if len(content) > settings.max_document_bytes:
                raise BatchError("larger than the document limit", code="too_large")
            media_type = sniff_media_type(content[:SNIFF_BYTES], paths[0].name)
        except (DocumentError, BatchError) as e:
            summary.rejected[e.code] = summary.rejected.get(e.code, 0) + 1
            log.warning("batch file rejected", extra={"sha256": sha256, "error_code": e.code})
            continue
        with session_factory.begin() as session:
            document, _ = repo.add_document(
                session, tenant_id, content, media_type=media_type, blob_dir=settings.blob_dir
            )
            # Re-read in this session: freezing a user schema (its first job) updates the row.
            user = (
                None if choice.user is None else repo.get_user_schema(session, tenant_id, choice.name, choice.version)
            )
            job, created = submit_batch_item(
                session,
                batch,
                sha256=sha256,
                name=display_name(paths[0], key),
                document_id=document.id,
                copies=len(paths),
                user_schema=user,
            )
            summary.documents += 1
            summary.new_jobs += int(created)
            summary.already_done += int(job.status in _SETTLED)
    summary.seconds = time.perf_counter() - started
    return batch, summary


def run_embedded(
    session_factory: sessionmaker[Session],
    settings: Settings,
    batch_id: uuid.UUID,
    *,
    engine: Engine | None = None,
    progress: ProgressFn | None = None,
    idle_poll_s: float = 0.5,
) -> None:
    """Be the worker until every item of the batch has settled (jobs of other batches queued first run too)."""
    state = counts(session_factory, batch_id)
    if engine is None and state["done"] < state["total"]:
        # Build it now: a missing or refused model is the command's error, not every document's failure.
        engine = engine_from(settings)
    worker = EmbeddedWorker(session_factory, settings, engine=engine)
    while True:
        state = counts(session_factory, batch_id)
        if progress is not None:
            progress(state["done"], state["total"])
        if state["done"] >= state["total"]:
            return
        if not worker.run_once():
            # Nothing claimable: a stale lease of an interrupted run has to lapse first.
            time.sleep(idle_poll_s)


def wait_for(
    session_factory: sessionmaker[Session],
    batch_id: uuid.UUID,
    *,
    progress: ProgressFn | None = None,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
) -> bool:
    """Poll until the batch settles (broker mode: the relay and Celery workers do the work); False on timeout."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        state = counts(session_factory, batch_id)
        if progress is not None:
            progress(state["done"], state["total"])
        if state["done"] >= state["total"]:
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll_s)


def run_batch(
    settings: Settings,
    source: str,
    schema: str,
    *,
    out_dir: Path | None = None,
    engine: Engine | None = None,
    tenant: str = DEFAULT_TENANT,
    wait: bool = True,
    retry: bool = False,
    progress: ProgressFn | None = None,
    session_factory: sessionmaker[Session] | None = None,
    follow_symlinks: bool = False,
) -> BatchSummary:
    """`abstractor batch`: migrate, prepare (walk, dedupe, enqueue), run or wait, export; resumable.

    `engine` replaces the configured one (tests inject a deterministic engine through a wrapper script);
    jobs are keyed by its model name, as `abstractor serve` does with an injected engine.
    """
    started = time.perf_counter()
    owns = session_factory is None
    if session_factory is None:
        run_migrations(settings.database_url, app_role=settings.database_app_role)
        session_factory = make_session_factory(make_engine(settings.database_url, hide_parameters=True))
    try:
        model = engine_ref(engine.info) if engine is not None else model_ref(settings)
        batch, summary = prepare_batch(
            session_factory, settings, source, schema, model=model, tenant=tenant, follow_symlinks=follow_symlinks
        )
        if retry:
            with session_factory.begin() as session:
                summary.retried = retry_failed(session, batch.id)
            summary.already_done -= summary.retried
        embedded = settings.broker_url is None
        if embedded:
            with session_factory.begin() as session:
                summary.requeued = recover_interrupted(session, batch.id)
            run_embedded(session_factory, settings, batch.id, engine=engine, progress=progress)
        elif wait:
            wait_for(session_factory, batch.id, progress=progress)
        state = counts(session_factory, batch.id)
        summary.succeeded, summary.failed = state["succeeded"], state["failed"]
        summary.waiting = state["total"] - state["done"]
        if summary.waiting == 0:
            target = out_dir or settings.data_dir / "batches" / str(batch.id)
            summary.exports = export_batch(session_factory, batch.id, target)
        summary.seconds = round(time.perf_counter() - started, 3)
        log.info(
            "batch finished",
            extra={
                "batch_id": summary.batch_id,
                "documents": summary.documents,
                "already_done": summary.already_done,
                "succeeded": summary.succeeded,
                "failed": summary.failed,
            },
        )
        return summary
    finally:
        if owns:
            bind = session_factory.kw.get("bind")
            if bind is not None:
                bind.dispose()
