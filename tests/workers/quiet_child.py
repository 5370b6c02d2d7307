"""The canary's child: every way we know for a job to fail, run at DEBUG in a process of its own, so the
parent (`test_quiet_failures.py`) sees every byte it writes, native libraries' writes to fd 2 included.

Run as `python -W default -m tests.workers.quiet_child OUT.json MODEL_CACHE`; writes each path's outcome
(code, message, seconds) and the store's audit rows to OUT.json and prints nothing of its own.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from schemas.user_schema import load_user_schema
from service.jobs.resolve import UserSchemaSpec
from service.logs import JsonFormatter, configure_logging
from service.store import repositories as repo
from service.store.models import Job
from service.store.session import make_engine, make_session_factory, run_migrations
from tests.support.engines import DeterministicEngine
from workers.documents.model import LimitsSpec
from workers.documents.reader import read_document
from workers.engines.llamacpp import LlamaCppEngine
from workers.engines.protocol import GenerationRequest, GenerationResult
from workers.errors import WorkerError
from workers.jobs import run_job
from workers.pipeline.run import PipelineOptions, extract_document

MARKER = "Zorblax Quintavius"
"""A patient's name nobody has: in the document, so in what the model writes."""

SCHEMA_MARKER = "quorvendix"
"""In the schema's property names and descriptions."""

NOTE = f"CLINIC NOTE\n\nPatient: {MARKER}, 61 years old. Code on file: aaaab. {MARKER} reports knee pain.\n"

GRAMMAR_BREAKER = "^(a|aa){1000,}b$"
"""llguidance compiles it, then gives up mid-generation (LexerTooComplex) when its lexer meets it."""

STALL_BUDGET_S = 2.0


class _Everything(logging.Formatter):
    """What a careless handler would print: message with args, every attribute, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        rendered = f"{record.name} {record.getMessage()} {vars(record)!r}"
        if record.exc_info:
            rendered += "\n" + self.formatException(record.exc_info)
        return rendered


def _user_schema(properties: dict[str, Any]) -> UserSchemaSpec:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return UserSchemaSpec(f"{SCHEMA_MARKER}@1", load_user_schema(schema, name=f"{SCHEMA_MARKER}_note"))


def _name() -> dict[str, Any]:
    return {"type": "string", "description": f"The patient's name ({SCHEMA_MARKER})."}


class _Answering(DeterministicEngine):
    """Answers every request with `answer(request)`: text and finish reason."""

    def __init__(self, answer: Callable[[GenerationRequest], tuple[str, str]]) -> None:
        super().__init__()
        self.answer = answer

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        out = []
        for request in requests:
            written, finish = self.answer(request)
            out.append(GenerationResult(written, finish, 100, self.count_tokens(written), 0.01))  # type: ignore[arg-type]
        return out


class _Crashing(DeterministicEngine):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        raise RuntimeError(f"engine crashed while writing {MARKER}")


def _babble(request: GenerationRequest) -> tuple[str, str]:
    """A generation that never gets anywhere: the name again and again, to the request's token limit."""
    return (f"{MARKER} " * request.max_tokens)[: 4 * request.max_tokens], "length"


def _job_paths(folder: Path) -> dict[str, Any]:
    """The plumbing paths, each a whole job (`run_job`) on a SQLite store: the job's code and message."""
    url = f"sqlite:///{folder / 'store.db'}"
    run_migrations(url)
    factory = make_session_factory(make_engine(url))
    engines: dict[str, tuple[DeterministicEngine, PipelineOptions]] = {
        "invalid_json": (_Answering(lambda r: (f"{MARKER} is the patient", "stop")), PipelineOptions()),
        "validation_failed": (_Answering(lambda r: (json.dumps({"parties": MARKER}), "stop")), PipelineOptions()),
        "engine_crash": (_Crashing(), PipelineOptions()),
        "token_budget": (_Answering(_babble), PipelineOptions(max_generated_tokens=200)),
    }
    out: dict[str, Any] = {}
    for path, (engine, options) in engines.items():
        with factory.begin() as session:
            tenant = repo.create_tenant(session, f"t-{uuid.uuid4().hex[:6]}")
            document, _ = repo.add_document(session, tenant.id, NOTE.encode(), media_type="text/plain")
            job, _ = repo.create_job(
                session, tenant.id, document.id, schema_name="nda", schema_version=1, model="m", backend="b"
            )
            job_id = job.id
        started = time.monotonic()
        run_job(factory, job_id, engine, options, LimitsSpec())
        with factory() as session:
            stored = session.scalars(select(Job).where(Job.id == job_id)).one()
            out[path] = {
                "code": stored.error_code,
                "message": stored.error_message,
                "status": stored.status.value,
                "seconds": time.monotonic() - started,
            }
    with factory() as session:
        out["audit"] = [str(row) for row in session.execute(text("SELECT * FROM audit_events")).all()]
    return out


def _pipeline(engine: Any, schema: UserSchemaSpec, options: PipelineOptions) -> dict[str, Any]:
    """One document through the pipeline with the real engine: the failure's code and message."""
    doc = read_document(NOTE.encode(), media_type="text/plain", limits=LimitsSpec())
    started = time.monotonic()
    try:
        extract_document(doc, schema, engine, options)
    except WorkerError as e:
        return {"code": e.code, "message": e.message, "seconds": time.monotonic() - started}
    return {"code": None, "message": None, "seconds": time.monotonic() - started}


def _engine_paths(cache: Path) -> dict[str, Any]:
    """The real model's paths: a grammar that breaks mid-generation, a cut answer, a stalled generation."""
    engine = LlamaCppEngine(cache_dir=cache)
    breaking = _user_schema(
        {
            "patient_name": _name(),
            f"{SCHEMA_MARKER}_code": {"type": "string", "pattern": GRAMMAR_BREAKER, "description": SCHEMA_MARKER},
        }
    )
    out = {
        "grammar_failed": _pipeline(engine, breaking, PipelineOptions()),
        "output_truncated": _pipeline(
            engine, _user_schema({"patient_name": _name()}), PipelineOptions(max_new_tokens=3)
        ),
    }
    # A schema the model can follow for ever (a huge minItems), cut by the time budget inside the decode.
    stalling = LlamaCppEngine(cache_dir=cache, generation_timeout_s=STALL_BUDGET_S)
    endless = _user_schema({"names": {"type": "array", "items": _name(), "minItems": 1_000_000}})
    out["time_budget"] = _pipeline(stalling, endless, PipelineOptions(max_new_tokens=1_500))
    return out


def main(argv: list[str]) -> int:
    target, cache = Path(argv[1]), Path(argv[2])
    configure_logging("DEBUG")
    everything = logging.StreamHandler(sys.stderr)
    everything.setFormatter(_Everything())
    logging.getLogger().addHandler(everything)
    logging.getLogger("canary").debug("canary child started", extra={"formatter": JsonFormatter.__name__})
    outcomes = _job_paths(target.parent)
    outcomes.update(_engine_paths(cache))
    target.write_text(json.dumps(outcomes, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
