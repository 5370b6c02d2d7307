"""`schema-check`: which JSON Schemas a grammar backend can enforce, and whether our validator rejects
every instance it must, over files shaped like JSONSchemaBench's (`{description, meta, schema, tests}`).

Each file runs in a child process with a wall-clock limit, so a schema that makes a backend spin for
minutes or die in native code costs one result, never the run.

    python -m bench.schema_check --backend llguidance /path/to/jsonschemabench
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import signal
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal, cast

from schemas.errors import InvalidSchemaError
from schemas.user_schema import UserSchema, load_user_schema
from workers.engines.grammar import GRAMMAR_BACKENDS, GrammarBackend, UnsupportedSchemaError, build_grammar
from workers.errors import ConfigError

CheckStatus = Literal["compiled", "unsupported", "crashed"]

COMPILE_TIMEOUT = "compile timeout"
VALIDATION_TIMEOUT = "validation timeout"

_STARTUP_TIMEOUT_S = 120.0  # a fresh child imports jsonschema, llguidance and outlines-core first


@dataclass(frozen=True)
class SchemaCheckResult:
    """One schema file: whether the backend compiled it, and how our validator did on its tests."""

    schema_id: str
    backend: str
    status: CheckStatus
    reason: str = ""
    seconds: float = 0.0
    """Grammar compile time (the run's limit when it timed out)."""
    n_tests: int = 0
    n_invalid_accepted: int = 0
    n_valid_rejected: int = 0
    schema_valid: bool | None = None
    """The meta-schema verdict; None when the file never got that far."""
    grammar_invalid_accepted: int | None = None
    """Invalid instances the compiled grammar would let a model write (None: not compiled)."""
    grammar_valid_rejected: int | None = None
    """Valid instances, written compactly, that the grammar refuses (often property order)."""


@dataclass
class SchemaCheckSummary:
    """Results for a set of files, in input order, plus the figures the CLI prints."""

    backend: str
    results: list[SchemaCheckResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: CheckStatus) -> int:
        """How many files ended with `status`."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def accepted_invalid(self) -> int:
        """Invalid test instances our validator accepted: must be 0."""
        return sum(r.n_invalid_accepted for r in self.results)

    @property
    def rejected_valid(self) -> int:
        """Valid test instances our validator rejected."""
        return sum(r.n_valid_rejected for r in self.results)

    def unsupported_reasons(self) -> Counter[str]:
        """Unsupported files grouped by the gist of their reason."""
        return Counter(_reason_group(r.reason) for r in self.results if r.status == "unsupported")

    def last_line(self) -> str:
        """The one line a CI job greps."""
        return (
            f"compiled={self.count('compiled')} unsupported={self.count('unsupported')} "
            f"crashed={self.count('crashed')} accepted_invalid={self.accepted_invalid}"
        )

    def detail_line(self) -> str:
        """Second-order figures: valid instances rejected, grammar exactness, wall time."""
        grammar_ai = sum(r.grammar_invalid_accepted or 0 for r in self.results)
        grammar_rv = sum(r.grammar_valid_rejected or 0 for r in self.results)
        return (
            f"rejected_valid={self.rejected_valid} grammar_accepted_invalid={grammar_ai} "
            f"grammar_rejected_valid={grammar_rv} seconds={self.seconds:.1f}"
        )


def check_schema_file(path: Path, backend: str) -> SchemaCheckResult:
    """Validate the file's tests with our validator, then compile its schema with `backend` (in-process:
    no time limit; use `check_schema_files` for untrusted or pathological schemas)."""
    _preflight(backend)
    user, tests, partial = _validation_part(path, backend)
    return _compile_part(backend, user, tests, partial)


def check_schema_files(
    paths: Iterable[Path],
    backend: str,
    per_schema_timeout_s: float = 10.0,
    progress: Callable[[int, int], None] | None = None,
    *,
    workers: int | None = None,
    memory_limit_mb: int | None = 4096,
) -> SchemaCheckSummary:
    """Check every file in a child process with a hard wall-clock limit.

    A timeout is reported as `unsupported` ("compile timeout"): a grammar that cannot be built within
    the budget cannot serve a request either, which is what "unsupported" tells the user, and the child
    is killed and replaced. `crashed` is kept for real faults (a child that dies, an exception that
    escapes) because those are bugs to fix, not schema limits.
    """
    _preflight(backend)
    files = [Path(p) for p in paths]
    started = time.perf_counter()
    if not files:
        return SchemaCheckSummary(backend)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(files)))
    pool = _Pool(n_workers, memory_limit_mb)
    results: dict[int, SchemaCheckResult] = {}
    try:
        pending = list(enumerate(files))
        pending.reverse()
        while pending or pool.busy():
            for worker in pool.idle():
                if not pending:
                    break
                worker.start_task(*pending.pop(), backend, per_schema_timeout_s)
            for index, result in pool.collect(backend):
                results[index] = result
                if progress is not None:
                    progress(len(results), len(files))
    finally:
        pool.close()
    summary = SchemaCheckSummary(backend, [results[i] for i in range(len(files))])
    summary.seconds = time.perf_counter() - started
    return summary


# --- the work itself (runs in the child) -------------------------------------------------------------


@dataclass(frozen=True)
class _Tests:
    valid: list[Any]
    invalid: list[Any]


def _load(path: Path) -> tuple[Any, _Tests]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    tests = doc.get("tests", [])
    return doc["schema"], _Tests(
        valid=[t["data"] for t in tests if t["valid"]], invalid=[t["data"] for t in tests if not t["valid"]]
    )


def _validation_part(path: Path, backend: str) -> tuple[UserSchema | None, _Tests, SchemaCheckResult]:
    schema, tests = _load(path)
    base = SchemaCheckResult(
        schema_id=path.stem,
        backend=backend,
        status="unsupported",
        n_tests=len(tests.valid) + len(tests.invalid),
    )
    try:
        user = load_user_schema(schema)
    except InvalidSchemaError as e:
        return None, tests, replace(base, reason=f"invalid JSON Schema: {e}", schema_valid=False)
    return (
        user,
        tests,
        replace(
            base,
            schema_valid=True,
            n_invalid_accepted=sum(1 for data in tests.invalid if user.is_valid(data)),
            n_valid_rejected=sum(1 for data in tests.valid if not user.is_valid(data)),
        ),
    )


def _compile_part(
    backend: str, user: UserSchema | None, tests: _Tests, partial: SchemaCheckResult
) -> SchemaCheckResult:
    if user is None:
        return partial
    started = time.perf_counter()
    try:
        grammar = build_grammar(user.schema, cast(GrammarBackend, backend))  # checked by _preflight
    except UnsupportedSchemaError as e:
        return replace(partial, reason=e.message, seconds=time.perf_counter() - started)
    except MemoryError:
        return replace(partial, reason="compile out of memory", seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    verdicts_invalid = [grammar.accepts(_compact(d)) for d in tests.invalid]
    verdicts_valid = [grammar.accepts(_compact(d)) for d in tests.valid]
    known = all(v is not None for v in verdicts_invalid + verdicts_valid)
    return replace(
        partial,
        status="compiled",
        seconds=seconds,
        grammar_invalid_accepted=sum(1 for v in verdicts_invalid if v) if known else None,
        grammar_valid_rejected=sum(1 for v in verdicts_valid if v is False) if known else None,
    )


def _compact(data: Any) -> str:
    # The form a compact-whitespace grammar lets a model write.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _preflight(backend: str) -> None:
    if backend not in GRAMMAR_BACKENDS:
        raise ConfigError(f"unknown grammar backend {backend!r}; choose one of {GRAMMAR_BACKENDS}")
    if backend == "xgrammar":
        try:
            import xgrammar  # noqa: F401
        except ImportError as e:
            raise ConfigError("xgrammar is not installed", code="backend_missing") from e


def _worker_main(conn: Connection, memory_limit_mb: int | None) -> None:
    """Child loop: import once, then (path, backend) in, a "validated" and a "done" message out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # jsonschema's "regex" format check compiles user patterns; Python's FutureWarnings about them
    # ("possible nested set") are noise in a report, and never change a verdict.
    warnings.filterwarnings("ignore", category=FutureWarning)
    if memory_limit_mb is not None:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import llguidance  # noqa: F401  # warm imports before "ready" so they do not eat a file's time limit
    import outlines_core  # noqa: F401

    conn.send(("ready", None))
    while True:
        task = conn.recv()
        if task is None:
            return
        path, backend = task
        try:
            user, tests, partial = _validation_part(path, backend)
            conn.send(("validated", partial))
            conn.send(("done", _compile_part(backend, user, tests, partial)))
        except Exception as e:  # noqa: BLE001  # isolating any fault per file is this process's job
            conn.send(("crashed", f"{type(e).__name__}: {e}"[:300]))


# --- the parent's side of the pool ------------------------------------------------------------------


class _Worker:
    """One child process and what it is doing; replaced whenever it must be killed."""

    def __init__(self, ctx: Any, memory_limit_mb: int | None):
        self._ctx = ctx
        self._memory_limit_mb = memory_limit_mb
        self._spawn()

    def _spawn(self) -> None:
        self.conn, child_conn = self._ctx.Pipe()
        self.process = self._ctx.Process(target=_worker_main, args=(child_conn, self._memory_limit_mb), daemon=True)
        self.process.start()
        child_conn.close()
        self.ready = False
        self.ready_by = time.monotonic() + _STARTUP_TIMEOUT_S
        self.task: tuple[int, Path] | None = None
        self.partial: SchemaCheckResult | None = None
        self.deadline = 0.0
        self.timeout_s = 0.0

    def start_task(self, index: int, path: Path, backend: str, timeout_s: float) -> None:
        self.task, self.partial, self.timeout_s = (index, path), None, timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.conn.send((path, backend))

    def restart(self) -> None:
        self.kill()
        self._spawn()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class _Pool:
    def __init__(self, size: int, memory_limit_mb: int | None):
        ctx = multiprocessing.get_context("spawn")  # no fork: the parent may hold threads and native state
        self.workers = [_Worker(ctx, memory_limit_mb) for _ in range(size)]

    def idle(self) -> list[_Worker]:
        return [w for w in self.workers if w.ready and w.task is None]

    def busy(self) -> bool:
        return any(w.task is not None for w in self.workers)

    def collect(self, backend: str) -> list[tuple[int, SchemaCheckResult]]:
        """Wait for the next message or deadline; return the files that finished meanwhile."""
        now = time.monotonic()
        waiting = [w for w in self.workers if w.task is not None or not w.ready]
        if not waiting:
            return []
        deadlines = [w.deadline if w.task is not None else w.ready_by for w in waiting]
        ready_conns = wait([w.conn for w in waiting], timeout=max(0.0, min(deadlines) - now))
        finished: list[tuple[int, SchemaCheckResult]] = []
        for worker in waiting:
            if worker.conn in ready_conns:
                finished.extend(self._read(worker, backend))
            elif time.monotonic() >= (worker.deadline if worker.task is not None else worker.ready_by):
                finished.extend(self._expire(worker, backend))
        return finished

    def _read(self, worker: _Worker, backend: str) -> list[tuple[int, SchemaCheckResult]]:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            return self._died(worker, backend)
        if kind == "ready":
            worker.ready = True
            return []
        assert worker.task is not None
        index, path = worker.task
        if kind == "validated":
            worker.partial = payload
            return []
        worker.task = None
        if kind == "done":
            return [(index, payload)]
        base = worker.partial or SchemaCheckResult(schema_id=path.stem, backend=backend, status="crashed")
        return [(index, replace(base, status="crashed", reason=str(payload)))]

    def _expire(self, worker: _Worker, backend: str) -> list[tuple[int, SchemaCheckResult]]:
        if worker.task is None:
            raise ConfigError(f"schema-check worker did not start within {_STARTUP_TIMEOUT_S:.0f} s")
        index, path = worker.task
        partial = worker.partial
        worker.restart()
        if partial is None:
            # Our own validator ran out of time (e.g. a catastrophic regex): that is unsupported too.
            result = SchemaCheckResult(
                schema_id=path.stem, backend=backend, status="unsupported", reason=VALIDATION_TIMEOUT
            )
        else:
            result = replace(partial, status="unsupported", reason=COMPILE_TIMEOUT, seconds=worker.timeout_s)
        return [(index, result)]

    def _died(self, worker: _Worker, backend: str) -> list[tuple[int, SchemaCheckResult]]:
        worker.process.join(timeout=10)
        code = worker.process.exitcode
        task, partial = worker.task, worker.partial
        if task is None:  # it died importing: every replacement would too
            raise ConfigError(f"schema-check worker failed to start ({_exit_text(code)})")
        worker.restart()
        index, path = task
        base = partial or SchemaCheckResult(schema_id=path.stem, backend=backend, status="crashed")
        return [(index, replace(base, status="crashed", reason=f"worker died ({_exit_text(code)})"))]

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.is_alive() and worker.task is None:
                try:
                    worker.conn.send(None)
                except OSError:
                    worker.process.kill()
                worker.process.join(timeout=5)
            worker.kill()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


_REASON_GROUPS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Backend messages name the offending format or quote the offending sub-schema; the report groups
    # them by the kind of limit (and the sub-schema's first keyword), not by each schema's details.
    (re.compile(r"Unknown format: .*"), "Unknown format: <name>"),
    (re.compile(r"Format \S+ is not supported.*"), "Format <name> is not supported"),
    (
        re.compile(r'Unsupported JSON Schema structure \{"([^"]*)".*'),
        r"Unsupported JSON Schema structure {\1: …}",
    ),
    (
        re.compile(r"Unsupported JSON Schema structure (true|false)\b.*"),
        r"Unsupported JSON Schema structure \1",
    ),
    (re.compile(r"The vocabulary provided is incompatible with the regex.*"), "regex matches nothing"),
    (re.compile(r"invalid JSON Schema: .*"), "invalid JSON Schema"),
)


def _reason_group(reason: str) -> str:
    gist = reason.split(" while processing")[0].split(" / ")[0]
    for pattern, replacement in _REASON_GROUPS:
        gist = pattern.sub(replacement, gist)
    return gist if len(gist) <= 100 else gist[:100] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: check a folder (or files) of benchmark schemas and print the summary lines."""
    parser = argparse.ArgumentParser(prog="schema-check", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("paths", nargs="+", type=Path, help="schema files or folders of *.json")
    parser.add_argument("--backend", default="llguidance", choices=GRAMMAR_BACKENDS)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per schema")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    args = parser.parse_args(argv)
    files = sorted(f for p in args.paths for f in (sorted(p.glob("*.json")) if p.is_dir() else [p]))

    def show(done: int, total: int) -> None:
        if done % 25 == 0 or done == total:
            print(f"{done}/{total}", file=sys.stderr, flush=True)

    summary = check_schema_files(files, args.backend, args.timeout, show, workers=args.workers)
    for gist, n in summary.unsupported_reasons().most_common():
        print(f"unsupported {n:4d}  {gist}")
    for r in summary.results:
        if r.status == "crashed" or r.n_invalid_accepted:
            print(f"{r.status:11s} {r.schema_id}: {r.reason} invalid_accepted={r.n_invalid_accepted}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in summary.results], indent=1), encoding="utf-8")
    print(summary.detail_line())
    print(summary.last_line())
    return 0 if summary.count("crashed") == 0 and summary.accepted_invalid == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
