"""Batch extraction over an archive: walk, deduplicate by sha256, enqueue, run or wait, resume, export.

The batch manifest lives in the store (`batches`, `batch_items`): one item per distinct sha256, each
pointing at its job. Jobs are keyed by (tenant, document, schema, model), so a restarted batch finds
every finished document's job again and re-extracts nothing; only documents whose job never
finished run. In embedded mode (no `ABSTRACTOR_BROKER_URL`) this process is the worker: it claims
the outbox rows itself, one job at a time, and a job an interrupted run left `running` is requeued
at the restart (one worker per SQLite store). With a broker it only enqueues (outbox rows the relay
publishes) and polls until the batch settles.

Exports hold one row per distinct document: JSONL (the full record), CSV (data fields flattened,
nested values as JSON) and Parquet when pyarrow is installed.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from schemas.errors import UnknownSchemaError
from schemas.registry import get_schema, list_schemas
from service.config import Settings
from service.runtime import model_ref
from service.store import repositories as repo
from service.store.models import Batch, BatchItem, Job, JobStatus, Result, UserSchema
from workers.documents import DocumentError, sniff_media_type
from workers.documents.sniff import SNIFF_BYTES
from workers.engines.protocol import Engine

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = frozenset({".pdf", ".txt", ".md", ".markdown"})
"""What a folder walk picks up; a glob takes whatever it matches (the bytes decide the type anyway)."""
EXPORT_FORMATS = ("jsonl", "csv", "parquet")
DEFAULT_TENANT = "local"
_PAGE = 500
_GLOB_CHARS = frozenset("*?[")
_SETTLED = (JobStatus.SUCCEEDED, JobStatus.FAILED)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class BatchError(Exception):
    """A batch that cannot start: nothing to read, unknown schema. Carries a CLI/API error code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- walking and hashing -----------------------------------------------------------------------------


def discover(source: str) -> tuple[str, list[Path]]:
    """(the source's stable key, the files it names, sorted): a folder (walked), a glob, or one file."""
    path = Path(source).expanduser()
    if path.is_dir():
        root = path.resolve()
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES]
        return str(root), sorted(files)
    if any(c in source for c in _GLOB_CHARS):
        pattern = str(Path(source).expanduser().absolute())
        files = [Path(p).resolve() for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
        return pattern, sorted(set(files))
    if path.is_file():
        return str(path.resolve()), [path.resolve()]
    raise BatchError(f"no such file, folder or matching glob: {source}", code="not_found")


def file_sha256(path: Path) -> str:
    """The file's sha256, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def group_by_content(files: Sequence[Path]) -> dict[str, list[Path]]:
    """sha256 -> the files with that content, in walk order (the first names the batch item)."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(file_sha256(path), []).append(path)
    return groups


def _display_name(path: Path, source_key: str) -> str:
    root = Path(source_key)
    try:
        return str(path.relative_to(root if root.is_dir() else root.parent))
    except ValueError:
        return path.name


# --- enqueueing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaChoice:
    """A resolved schema: built-in (user is None) or a tenant's registered one."""

    name: str
    version: int
    user: UserSchema | None = None


def resolve_schema(session: Session, tenant_id: uuid.UUID, name: str, version: int | None = None) -> SchemaChoice:
    """Built-in schemas first (their names are reserved), then the tenant's own; `name@N` is accepted."""
    if "@" in name and version is None:
        base, _, number = name.partition("@")
        if number.isdigit():
            name, version = base, int(number)
    if any(spec.name == name for spec in list_schemas()):
        spec = get_schema(name if version is None else f"{name}@{version}")
        return SchemaChoice(spec.name, spec.version)
    user = repo.get_user_schema(session, tenant_id, name, version)
    if user is None:
        raise UnknownSchemaError(f"unknown schema {name if version is None else f'{name}@{version}'!r}")
    return SchemaChoice(user.name, user.version, user)


def enqueue_item(
    session: Session,
    batch: Batch,
    *,
    sha256: str,
    name: str,
    document_id: uuid.UUID,
    copies: int = 1,
    user_schema: UserSchema | None = None,
) -> tuple[Job, bool]:
    """Add (or find) the batch item for this content and its job; a new job gets its outbox row here.

    Returns (job, created): an existing job, finished or not, is reused as it is (job dedupe).
    """
    item, _ = repo.add_batch_item(session, batch, sha256=sha256, name=name, document_id=document_id, copies=copies)
    job, created = repo.create_job(
        session,
        batch.tenant_id,
        document_id,
        schema_name=batch.schema_name,
        schema_version=batch.schema_version,
        model=batch.model,
        backend=batch.backend,
        user_schema=user_schema,
        webhook_url=batch.webhook_url,
    )
    if created:
        repo.add_outbox(session, job.id)
    repo.set_batch_item_job(session, item, job.id)
    return job, created


def counts(session_factory: sessionmaker[Session], batch_id: uuid.UUID) -> dict[str, int]:
    """Items per status, with `total` and `done` (succeeded + failed)."""
    with session_factory() as session:
        by_status = repo.batch_status_counts(session, batch_id)
    out = {s.value: by_status.get(s.value, 0) for s in JobStatus}
    out["pending"] = by_status.get("pending", 0)
    out["total"] = sum(by_status.values())
    out["done"] = out["succeeded"] + out["failed"]
    return out


def retry_failed(session_factory: sessionmaker[Session], batch_id: uuid.UUID) -> int:
    """Put the batch's failed jobs back in the queue (an operator's retry, audited); returns how many."""
    from service.store import audit
    from service.store.models import AuditOutcome

    retried = 0
    with session_factory.begin() as session:
        for job_id in repo.batch_job_ids(session, batch_id, [JobStatus.FAILED]):
            job = repo.load_job(session, job_id)
            if job is None or not repo.transition(session, job_id, [JobStatus.FAILED], JobStatus.QUEUED):
                continue
            repo.add_outbox(session, job_id)
            audit.record_event(
                session,
                actor="cli",
                tenant_id=job.tenant_id,
                action="job.retried",
                target_type="job",
                target_id=job_id,
                request_id=None,
                outcome=AuditOutcome.SUCCESS,
                details={"batch_id": batch_id},
            )
            retried += 1
    return retried


def recover_embedded(session_factory: sessionmaker[Session], batch_id: uuid.UUID) -> int:
    """Embedded mode, at start: requeue the batch's jobs an interrupted run left running, and give every
    queued job without a pending outbox row a new one. Returns how many jobs were put back in line.

    Safe only where this process is the store's one worker (the SQLite embedded default).
    """
    put_back = 0
    with session_factory.begin() as session:
        for job_id in repo.batch_job_ids(session, batch_id, [JobStatus.RUNNING]):
            if repo.transition(
                session,
                job_id,
                [JobStatus.RUNNING],
                JobStatus.QUEUED,
                error_code="interrupted",
                error_message="the batch run was interrupted; requeued at restart",
            ):
                put_back += 1
        queued = repo.batch_job_ids(session, batch_id, [JobStatus.QUEUED])
        waiting = repo.jobs_with_unsent_outbox(session, queued)
        for job_id in queued:
            if job_id not in waiting:
                repo.add_outbox(session, job_id)
    return put_back


# --- exporting ---------------------------------------------------------------------------------------


def export_row(item: BatchItem, job: Job | None, result: Result | None) -> dict[str, Any]:
    """One document's line: who it is, how its job ended, and (when succeeded) the record."""
    quality: dict[str, Any] = (result.flags or {}) if result is not None else {}
    return {
        "name": item.name,
        "sha256": item.sha256,
        "copies": item.copies,
        "document_id": str(item.document_id),
        "job_id": None if job is None else str(job.id),
        "status": "pending" if job is None else job.status.value,
        "schema": None if job is None else job.schema_ref,
        "model": None if job is None else job.model,
        "error_code": None if job is None or job.status is not JobStatus.FAILED else job.error_code,
        "data": None if result is None else result.data,
        "evidence": None if result is None else result.evidence,
        "flags": None if result is None else quality.get("items", []),
    }


def iter_export_rows(session_factory: sessionmaker[Session], batch_id: uuid.UUID) -> Iterator[dict[str, Any]]:
    """Every item's export row in manifest order, read a page at a time."""
    after = 0
    while True:
        with session_factory() as session:
            page = repo.batch_rows(session, batch_id, after_id=after, limit=_PAGE)
            rows = [export_row(item, job, result) for item, job, result in page]
            ids = [item.id for item, _, _ in page]
        yield from rows
        if len(page) < _PAGE:
            return
        after = ids[-1]


def jsonl_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per line."""
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


_FIXED = ("name", "sha256", "copies", "document_id", "job_id", "status", "schema", "model", "error_code")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def flat_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) with each top-level data field as a `data.<field>` column (nested values as JSON)."""
    fields: dict[str, None] = {}
    for row in rows:
        if isinstance(row["data"], dict):
            fields.update(dict.fromkeys(row["data"]))
    columns = [*_FIXED, *(f"data.{f}" for f in fields), "flags"]
    out = []
    for row in rows:
        data = row["data"] if isinstance(row["data"], dict) else {}
        flat = {c: row[c] for c in _FIXED}
        flat.update({f"data.{f}": data.get(f) for f in fields})
        flat["flags"] = row["flags"]
        out.append(flat)
    return columns, out


def csv_text(rows: Sequence[dict[str, Any]]) -> Iterator[str]:
    """The CSV export, a line at a time (cells that a spreadsheet would run as formulas are quoted with ')."""
    import io

    columns, flat = flat_rows(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    yield buffer.getvalue()
    for row in flat:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow({k: _cell(v) for k, v in row.items()})
        yield buffer.getvalue()


def parquet_available() -> bool:
    """Whether pyarrow is installed (it is in the test extras, optional otherwise)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The flat table as Parquet; nested values (lists, objects) as JSON strings, so every row has one type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, flat = flat_rows(rows)
    arrays: dict[str, list[Any]] = {c: [] for c in columns}
    for row in flat:
        for c in columns:
            value = row[c]
            arrays[c].append(json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value)
    table = pa.table({c: pa.array([None if v is None else _plain(v) for v in vs]) for c, vs in arrays.items()})
    pq.write_table(table, path)


def _plain(value: Any) -> Any:
    # Mixed scalar types in one column (a user schema's "number|string") would not make one Arrow type.
    return value if isinstance(value, bool | int | float) and not isinstance(value, bool) else str(value)


def export_batch(
    session_factory: sessionmaker[Session], batch_id: uuid.UUID, out_dir: Path, formats: Sequence[str] = EXPORT_FORMATS
) -> dict[str, str]:
    """Write `results.<fmt>` files to `out_dir`; returns format -> path. Parquet is skipped without pyarrow."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(iter_export_rows(session_factory, batch_id))
    written: dict[str, str] = {}
    for fmt in formats:
        path = out_dir / f"results.{fmt}"
        if fmt == "jsonl":
            with path.open("w", encoding="utf-8") as f:
                f.writelines(jsonl_lines(iter(rows)))
        elif fmt == "csv":
            with path.open("w", encoding="utf-8", newline="") as f:
                f.writelines(csv_text(rows))
        elif fmt == "parquet":
            if not parquet_available():
                continue
            write_parquet(rows, path)
        else:
            raise BatchError(f"unknown export format {fmt!r}", code="bad_format")
        written[fmt] = str(path)
    return written


# --- the CLI's batch ---------------------------------------------------------------------------------


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
    already_done: int = 0
    new_jobs: int = 0
    requeued: int = 0
    retried: int = 0
    succeeded: int = 0
    failed: int = 0
    waiting: int = 0
    exports: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


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
    model: tuple[str, str],
    tenant: str = DEFAULT_TENANT,
) -> tuple[Batch, BatchSummary]:
    """Walk and hash the source, store new documents, and enqueue every distinct one in the batch manifest."""
    started = time.perf_counter()
    key, files = discover(source)
    if not files:
        raise BatchError(f"no documents found in {source}", code="not_found")
    groups = group_by_content(files)
    tenant_id = _tenant_id(session_factory, tenant)
    with session_factory.begin() as session:
        choice = resolve_schema(session, tenant_id, schema)
        batch = repo.find_batch(
            session, tenant_id, source=key, schema_name=choice.name, schema_version=choice.version, model=model[0]
        )
        if batch is None:
            batch = repo.create_batch(
                session,
                tenant_id,
                source=key,
                schema_name=choice.name,
                schema_version=choice.version,
                model=model[0],
                backend=model[1],
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
            job, created = enqueue_item(
                session,
                batch,
                sha256=sha256,
                name=_display_name(paths[0], key),
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
    from service.embedded import EmbeddedWorker
    from service.runtime import engine_from

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
) -> BatchSummary:
    """`abstractor batch`: migrate, prepare (walk, dedupe, enqueue), run or wait, export; resumable.

    `engine` replaces the configured one (tests inject a deterministic engine through a wrapper script);
    jobs are keyed by its model name, as `abstractor serve` does with an injected engine.
    """
    from service.store.session import make_engine, make_session_factory, run_migrations

    started = time.perf_counter()
    owns = session_factory is None
    if session_factory is None:
        run_migrations(settings.database_url, app_role=settings.database_app_role)
        session_factory = make_session_factory(make_engine(settings.database_url, hide_parameters=True))
    try:
        model = (
            (engine.info.model, f"{engine.info.engine}+{engine.info.grammar_backend}")
            if engine is not None
            else model_ref(settings)
        )
        batch, summary = prepare_batch(session_factory, settings, source, schema, model=model, tenant=tenant)
        if retry:
            summary.retried = retry_failed(session_factory, batch.id)
            summary.already_done -= summary.retried
        embedded = settings.broker_url is None
        if embedded:
            summary.requeued = recover_embedded(session_factory, batch.id)
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
