"""What every `abstractor` command shares: the one-line JSON error contract, progress on stderr, schemas."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas.errors import SchemaError
from schemas.registry import SchemaSpec, get_schema

EXIT_FAILURE = 2


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


def schema_spec(name: str) -> SchemaSpec:
    """A built-in schema by name (or name@version), or the CLI's error line."""
    try:
        return get_schema(name)
    except SchemaError as e:
        fail(e.code, str(e))


class ChunkProgress:
    """One self-rewriting line on a terminal's stderr while a document is extracted: chunk i of n, tokens/s,
    elapsed. Piped or redirected, stderr gets nothing (`callback` is None): logs and scripts stay clean."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()
        self.shown = False

    @property
    def callback(self) -> Any:
        """The pipeline's progress callback, or None where stderr is not a terminal."""
        isatty = getattr(self.stream, "isatty", None)
        return self.update if callable(isatty) and isatty() else None

    def update(self, done: int, total: int, tokens: int) -> None:
        """Rewrite the line (called by the pipeline after each chunk)."""
        elapsed = time.perf_counter() - self.started
        rate = tokens / elapsed if elapsed > 0 else 0.0
        self.stream.write(f"\rextracting: chunk {done} of {total} · {rate:.1f} tokens/s · {elapsed:.0f} s ")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the line, if one was drawn."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
