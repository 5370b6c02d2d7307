"""The `abstractor` command: extract one document, evaluate against gold labels, check JSON Schemas."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas.errors import SchemaError
from schemas.registry import SchemaSpec, get_schema
from service.config import Settings, get_settings
from service.logs import configure_logging
from workers.documents import read_document
from workers.documents.model import LimitsSpec
from workers.engines.factory import build_engine
from workers.engines.protocol import Engine
from workers.errors import WorkerError
from workers.pipeline.run import PipelineOptions, extract_document

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


def limits_from(settings: Settings) -> LimitsSpec:
    """Document limits from the one Settings class."""
    return LimitsSpec(
        max_bytes=settings.max_document_bytes,
        max_pages=settings.max_pages,
        max_chars=settings.max_chars,
        timeout_s=settings.parse_timeout_s,
        memory_mb=settings.parse_memory_mb,
    )


def options_from(settings: Settings) -> PipelineOptions:
    """Pipeline budgets from the one Settings class."""
    return PipelineOptions(
        max_new_tokens=settings.max_new_tokens,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
    )


def engine_from(settings: Settings) -> Engine:
    """The configured engine (loading a model takes a few seconds)."""
    return build_engine(
        settings.engine,
        grammar_backend=settings.grammar_backend,
        model_path=settings.model_path,
        model_sha256=settings.model_sha256,
        cache_dir=settings.data_dir / "models",
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
    )


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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
