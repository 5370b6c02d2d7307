"""The `abstractor` command: extract, evaluate, check JSON Schemas, serve the REST API, migrate the store,
export reviewed records as gold, anchor and verify the audit trail."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from schemas.errors import SchemaError
from service import cli_eval
from service.cli_common import EXIT_FAILURE, ChunkProgress, fail, progress_bar, schema_spec
from service.config import get_settings
from service.logs import configure_logging
from service.runtime import engine_from, limits_from, options_from
from workers.documents import read_document
from workers.errors import WorkerError
from workers.pipeline.run import extract_document

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.command("eval")(cli_eval.evaluate)
app.command("calibrate")(cli_eval.calibrate)


@app.callback()
def _root() -> None:
    """Abstractor: validated, source-grounded records from clinical notes, contracts and PDFs."""


@app.command()
def extract(
    path: Annotated[Path, typer.Argument(help="PDF, text or Markdown file.")],
    schema: Annotated[str, typer.Option("--schema", "-s", help="Schema name or name@version.")],
    password: Annotated[str | None, typer.Option(help="Password of an encrypted PDF.")] = None,
    pretty: Annotated[bool, typer.Option(help="Indent the JSON output.")] = False,
) -> None:
    """Extract one document and print `{document, schema, data, evidence, flags, model, timings}`."""
    settings = get_settings()
    configure_logging(settings.log_level)
    spec = schema_spec(schema)
    if not path.is_file():
        fail("not_found", f"no such file: {path}")
    try:
        doc = read_document(path, password=password, limits=limits_from(settings))
        engine = engine_from(settings)
        line = ChunkProgress()
        try:
            record = extract_document(doc, spec, engine, options_from(settings), progress=line.callback)
        finally:
            line.close()
    except WorkerError as e:
        fail(e.code, e.message, e.details)
    record["document"]["name"] = path.name
    sys.stdout.write(json.dumps(record, indent=2 if pretty else None, ensure_ascii=False) + "\n")


@app.command("schema-check")
def schema_check(
    files: Annotated[list[Path], typer.Argument(help="JSONSchemaBench files, or folders of them.")],
    backend: Annotated[str | None, typer.Option(help="Grammar backend (default: the configured one).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per schema.")] = 10.0,
    report: Annotated[Path | None, typer.Option(help="Write per-schema results as JSON here.")] = None,
) -> None:
    """Compile each schema with the grammar backend and validate its test instances.

    Last line: `compiled=N unsupported=M crashed=K accepted_invalid=J`.
    """
    from bench.schema_check import check_schema_files

    settings = get_settings()
    configure_logging(settings.log_level)
    paths: list[Path] = []
    for f in files:
        if f.is_dir():
            paths += sorted(f.glob("*.json"))
        elif f.is_file():
            paths.append(f)
        else:
            fail("not_found", f"no such file or folder: {f}")
    if not paths:
        fail("not_found", "no JSON Schema files given")
    chosen = backend or settings.grammar_backend
    try:
        with progress_bar(f"schema-check ({chosen})") as bar:
            task = bar.add_task("check", total=len(paths))
            summary = check_schema_files(
                paths,
                chosen,
                per_schema_timeout_s=timeout,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    except WorkerError as e:
        fail(e.code, e.message, e.details)
    if report:
        report.write_text(json.dumps([vars(r) for r in summary.results], indent=1, default=str))
    for reason, count in sorted(summary.unsupported_reasons().items(), key=lambda kv: -kv[1]):
        print(f"unsupported[{reason}]={count}")
    print(summary.detail_line())
    print(summary.last_line())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the REST API with an in-process worker: SQLite by default, no other server needed."""
    from service.errors import ServiceError
    from service.processes.embedded import serve as serve_embedded
    from service.store.errors import StoreError

    try:
        serve_embedded(host, port, get_settings())
    except (ServiceError, StoreError, WorkerError) as e:
        fail(e.code, e.message, e.details)


EXIT_INTERRUPTED = 130


def run_cli_batch(
    source: str,
    schema: str,
    *,
    out: Path | None = None,
    tenant: str = "local",
    wait: bool = True,
    retry_failed: bool = False,
    follow_symlinks: bool = False,
    engine: Any = None,
) -> None:
    """The body of `abstractor batch` (tests call it with a deterministic `engine` from a wrapper script)."""
    from service.errors import BatchError
    from service.processes.batch import run_batch
    from service.store.errors import StoreError

    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        with progress_bar(f"batch ({schema})") as bar:
            task = bar.add_task("batch", total=None)
            summary = run_batch(
                settings,
                source,
                schema,
                out_dir=out,
                engine=engine,
                tenant=tenant,
                wait=wait,
                retry=retry_failed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                follow_symlinks=follow_symlinks,
            )
    except KeyboardInterrupt:
        # The manifest and every finished job are committed; the job that was running is requeued on restart.
        error = {"code": "interrupted", "message": "batch interrupted; run the same command again to resume"}
        sys.stderr.write(json.dumps({"error": error}) + "\n")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BatchError as e:
        fail(e.code, e.message)
    except SchemaError as e:
        fail(e.code, str(e))
    except (StoreError, WorkerError) as e:
        fail(e.code, e.message, e.details)
    if summary.skipped_symlinks:  # one line, counts only (the links' names are the archive's)
        sys.stderr.write(json.dumps({"warning": summary.symlinks_warning()}) + "\n")
    sys.stdout.write(json.dumps(vars(summary)) + "\n")


@app.command()
def batch(
    source: Annotated[str, typer.Argument(help="A folder (walked for .pdf/.txt/.md), a glob (quote it), or a file.")],
    schema: Annotated[str, typer.Option("--schema", "-s", help="Schema name or name@version.")],
    out: Annotated[
        Path | None, typer.Option(help="Where results.jsonl/.csv/.parquet go (default: DATA_DIR/batches/<id>).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant the documents and jobs belong to (created if new).")] = "local",
    wait: Annotated[bool, typer.Option(help="With a broker: wait for the workers, then export.")] = True,
    retry_failed: Annotated[bool, typer.Option(help="Queue this batch's failed documents again.")] = False,
    follow_symlinks: Annotated[
        bool, typer.Option(help="Read symlinks that lead out of the folder (skipped and counted by default).")
    ] = False,
) -> None:
    """Extract every document of an archive: deduplicated by sha256, resumable, exported as JSONL/CSV/Parquet.

    Without ABSTRACTOR_BROKER_URL this process runs the jobs itself (embedded model, SQLite by default);
    with it, it only enqueues and polls. Run the same command again after an interruption: documents
    already extracted with this schema and model are not extracted again. Last stdout line: a JSON summary.
    """
    run_cli_batch(
        source, schema, out=out, tenant=tenant, wait=wait, retry_failed=retry_failed, follow_symlinks=follow_symlinks
    )


@app.command("export-gold")
def export_gold(
    schema: Annotated[str, typer.Option("--schema", "-s", help="Schema name whose finished reviews are written.")],
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch's documents (its id).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder to write (default: DATA_DIR/gold/<schema>).")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant whose reviews are exported.")] = "local",
) -> None:
    """Write reviewed records as a gold set: `abstractor eval OUT --schema NAME` scores against it.

    Last stdout line: a JSON summary naming the files (reviewed.jsonl, documents/, and predictions of the
    reviewed and of the model's records for `eval --predictions`).
    """
    import uuid

    from service.reviews.gold import export_gold as write_gold
    from service.store import repositories as repo
    from service.store.errors import StoreError
    from service.store.session import make_engine, make_session_factory

    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        batch_id = None if batch is None else uuid.UUID(batch)
    except ValueError:
        fail("invalid_option", "--batch must be a batch id (a UUID)")
    engine = make_engine(settings.database_url, hide_parameters=True)
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            found = repo.get_tenant_by_name(session, tenant)
        if found is None:
            fail("unknown_tenant", "no tenant of that name")
        summary = write_gold(
            factory,
            tenant_id=found.id,
            schema_name=schema.split("@", 1)[0],
            out=out or settings.data_dir / "gold" / schema.split("@", 1)[0],
            batch_id=batch_id,
            blob_dir=settings.blob_dir,
        )
    except StoreError as e:
        fail(e.code, e.message, e.details)
    finally:
        engine.dispose()
    sys.stdout.write(json.dumps(vars(summary)) + "\n")


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the database migrations to ABSTRACTOR_DATABASE_URL (run as the tables' owner)."""
    from service.store.errors import StoreError
    from service.store.session import run_migrations

    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        run_migrations(settings.database_url, revision, app_role=settings.database_app_role)
    except StoreError as e:
        fail(e.code, e.message, e.details)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the production REST API; with ABSTRACTOR_BROKER_URL set, the outbox relay runs beside it."""
    from service.processes.production import serve_api
    from service.store.errors import StoreError

    try:
        serve_api(host, port, get_settings())
    except (StoreError, WorkerError) as e:
        fail(e.code, e.message, e.details)


@app.command()
def relay() -> None:
    """Publish queued jobs to Redis and requeue jobs whose worker was lost, until SIGTERM."""
    from service.processes.production import run_relay
    from service.store.errors import StoreError

    try:
        run_relay(get_settings())
    except (StoreError, WorkerError) as e:
        fail(e.code, e.message, e.details)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Jobs run at once: threads sharing one engine (default ABSTRACTOR_WORKER_CONCURRENCY), "
            "or processes each with its own engine (default 1).",
        ),
    ] = None,
    pool: Annotated[
        str | None, typer.Option(help="threads or prefork (default ABSTRACTOR_WORKER_POOL: by engine).")
    ] = None,
) -> None:
    """Run a Celery worker on the `extractions` queue (the engine loads on the first job), until SIGTERM."""
    from service.processes.production import run_worker
    from service.store.errors import StoreError

    if pool not in (None, "threads", "prefork"):
        fail("invalid_option", "--pool must be threads or prefork")
    try:
        run_worker(get_settings(), concurrency=concurrency, pool=pool)
    except (StoreError, WorkerError) as e:
        fail(e.code, e.message, e.details)


audit_app = typer.Typer(no_args_is_help=True, help="Anchor and verify the hash-chained audit trail.")
app.add_typer(audit_app, name="audit")
EXIT_CHAIN_BROKEN = 1


@audit_app.command("anchor")
def audit_anchor(
    out: Annotated[Path | None, typer.Option(help="Also write the anchor (one JSON line) to this file.")] = None,
) -> None:
    """Print the chain's head `{seq, hash, taken_at}`: keep it outside the database, for `audit verify --anchor`."""
    from service.processes.audit import take_anchor
    from service.store.errors import StoreError

    try:
        line = take_anchor(get_settings(), out)
    except StoreError as e:
        fail(e.code, e.message, e.details)
    except OSError as e:
        fail("io_error", f"cannot write the anchor file: {e.strerror}")
    sys.stdout.write(json.dumps(line) + "\n")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[Path | None, typer.Option(help="An anchor written earlier by `audit anchor`.")] = None,
) -> None:
    """Walk the chain: exit 0 when intact (and reaching the anchor), 1 when broken, 2 on errors; one JSON line."""
    from service.processes.audit import report_json, verify
    from service.store.errors import StoreError

    try:
        report = verify(get_settings(), anchor)
    except StoreError as e:
        fail(e.code, e.message, e.details)
    sys.stdout.write(json.dumps(report_json(report, anchor)) + "\n")
    if not report.ok:
        raise typer.Exit(EXIT_CHAIN_BROKEN)


def main() -> None:
    """Console-script entry point; settings are read lazily, so their errors surface here as one JSON line."""
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as e:
        if e.title != "Settings":
            raise
        problems = [
            {"setting": "ABSTRACTOR_" + ".".join(str(p) for p in err["loc"]).upper(), "message": err["msg"]}
            for err in e.errors(include_input=False)
        ]
        error = {
            "code": "invalid_settings",
            "message": "invalid ABSTRACTOR_* settings",
            "details": {"errors": problems},
        }
        sys.stderr.write(json.dumps({"error": error}) + "\n")
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
