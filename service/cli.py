"""The `abstractor` command: extract, evaluate, check JSON Schemas, serve the REST API, migrate the store,
anchor and verify the audit trail."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas.errors import SchemaError
from schemas.registry import SchemaSpec, get_schema
from service.config import get_settings
from service.logs import configure_logging
from service.runtime import engine_from, limits_from, options_from
from workers.documents import read_document
from workers.errors import WorkerError
from workers.pipeline.run import extract_document

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

EXIT_FAILURE = 2


@app.callback()
def _root() -> None:
    """Abstractor: validated, source-grounded records from clinical notes, contracts and PDFs."""


def fail(code: str, message: str, details: dict[str, Any] | None = None) -> NoReturn:
    """One JSON line on stderr and exit status 2: the CLI's whole error contract."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    sys.stderr.write(json.dumps({"error": error}) + "\n")
    raise typer.Exit(EXIT_FAILURE)


def progress_bar(label: str) -> Progress:
    """A progress bar on stderr, so stdout stays machine-readable."""
    from rich.console import Console

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _schema(name: str) -> SchemaSpec:
    try:
        return get_schema(name)
    except SchemaError as e:
        fail(e.code, str(e))


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
    spec = _schema(schema)
    if not path.is_file():
        fail("not_found", f"no such file: {path}")
    try:
        doc = read_document(path, password=password, limits=limits_from(settings))
        engine = engine_from(settings)
        with progress_bar("extracting") as bar:
            task = bar.add_task("extract", total=None)
            record = extract_document(
                doc,
                spec,
                engine,
                options_from(settings),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except WorkerError as e:
        fail(e.code, e.message, e.details)
    record["document"]["name"] = path.name
    sys.stdout.write(json.dumps(record, indent=2 if pretty else None, ensure_ascii=False) + "\n")


def _eval_items(directory: Path, kind: str, limit: int | None) -> list[tuple[str, Any, Any]]:
    """(name, source, gold) triples: a PDF path for Kleister-NDA, note text for ACI-Bench."""
    from evaluation import load_aci, load_kleister

    items: list[tuple[str, Any, Any]]
    if kind == "kleister":
        items = [(p.name, p, gold) for p, gold in load_kleister(directory)]
    else:
        items = [(eid, text.encode("utf-8"), gold) for eid, text, gold in load_aci(directory)]
    return items[:limit] if limit else items


@app.command("eval")
def evaluate(
    directory: Annotated[Path, typer.Argument(help="Kleister-NDA folder (labels.tsv) or ACI-Bench folder.")],
    schema: Annotated[str, typer.Option("--schema", "-s", help="nda for Kleister-NDA, clinical_note for ACI.")],
    limit: Annotated[int | None, typer.Option(help="Score only the first N documents.")] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Write one JSON line per document (record or error) here.")
    ] = None,
) -> None:
    """Score extractions against gold labels: per-field precision/recall/F1, last line `micro_f1=<x>`."""
    from evaluation import (
        DATASET_SCHEMA,
        DatasetError,
        clinical_record_to_gold_shape,
        detect_dataset,
        nda_record_to_labels,
        print_report,
        score_aci,
        score_kleister,
    )

    settings = get_settings()
    configure_logging(settings.log_level)
    spec = _schema(schema)
    try:
        kind = detect_dataset(directory)
    except DatasetError as e:
        fail(e.code, str(e))
    if DATASET_SCHEMA[kind] != spec.name:
        fail("schema_mismatch", f"{kind} is labelled for schema {DATASET_SCHEMA[kind]!r}, not {spec.name!r}")
    items = _eval_items(directory, kind, limit)
    try:
        engine = engine_from(settings)
    except WorkerError as e:
        fail(e.code, e.message, e.details)
    pairs: list[tuple[Any, Any]] = []
    errors: dict[str, int] = {}
    out = predictions.open("w", encoding="utf-8") if predictions else None
    started = time.perf_counter()
    with progress_bar("evaluating") as bar:
        task = bar.add_task("eval", total=len(items))
        for name, source, gold in items:
            try:
                doc = read_document(source, limits=limits_from(settings))
                options = replace(options_from(settings), keep_chunk_records=predictions is not None)
                record = extract_document(doc, spec, engine, options)
                data: dict[str, Any] | None = record["data"]
            except WorkerError as e:  # a failed document scores as "nothing predicted", and is counted
                errors[e.code] = errors.get(e.code, 0) + 1
                data, record = None, {"error": e.to_dict()}
            if kind == "kleister":
                pairs.append((nda_record_to_labels(data) if data else [], gold))
            else:
                empty = dict.fromkeys(("patient_age", "patient_sex", "chief_complaint"))
                pairs.append((clinical_record_to_gold_shape(data) if data else empty, gold))
            if out:
                out.write(json.dumps({"name": name, "gold": gold, **record}, ensure_ascii=False) + "\n")
                out.flush()
            bar.advance(task)
    if out:
        out.close()
    scores = score_kleister(pairs) if kind == "kleister" else score_aci(pairs)
    elapsed = time.perf_counter() - started
    print(f"documents={len(items)} failed={sum(errors.values())} errors={errors} seconds={elapsed:.0f}")
    print_report(scores, title=f"{kind} / {spec.ref} / {engine.info.model} / {engine.info.grammar_backend}")


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
    from service.processes.embedded import serve as serve_embedded
    from service.store.errors import StoreError

    try:
        serve_embedded(host, port, get_settings())
    except (StoreError, WorkerError) as e:
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
