"""The pipeline end to end for one document: chunk, prompt, generate, validate, merge, ground."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from schemas.bounds import SchemaBounds
from workers.documents.errors import DocumentError
from workers.documents.model import Document
from workers.engines.constraints import generation_schema
from workers.engines.protocol import (
    GENERATION_STALLED,
    STOPPED_CODES,
    Engine,
    GenerationRequest,
    GenerationResult,
    Message,
)
from workers.errors import WorkerError
from workers.pipeline.calibration import CalibrationKey
from workers.pipeline.chunking import Chunk, chunk_document
from workers.pipeline.confidence import ChunkAnswer
from workers.pipeline.grounding import NOT_FOUND, Flag, ground_record, low_confidence_flags
from workers.pipeline.merging import merge_records
from workers.pipeline.names import complete_party_names
from workers.pipeline.plausibility import IMPLAUSIBLE, implausible
from workers.pipeline.prompting import build_messages
from workers.pipeline.scoring import score_record
from workers.pipeline.screening import screen_ungrounded
from workers.pipeline.validation import OutputError, validate_output

ProgressFn = Callable[[int, int, int], None]
"""(chunks done, chunks in all, tokens generated so far): called after each chunk."""


class SchemaLike(Protocol):
    """What the pipeline needs of a schema: built-in `SchemaSpec` and user schemas both fit."""

    @property
    def ref(self) -> str: ...

    @property
    def model(self) -> type[BaseModel]: ...

    def json_schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PipelineOptions:
    """Budgets for one extraction; the caller builds these from Settings (`service.runtime.options_from`).

    The defaults are the library's, for benchmarks and tests; the settings' defaults equal them (the
    pipeline cannot import the service nor the API the pipeline, so `tests/service/test_runtime.py` holds
    the two together), except `max_generated_tokens`, which a deployment always bounds."""

    max_new_tokens: int = 384
    chunk_tokens: int = 1800
    overlap_tokens: int = 0
    retry_factor: int = 2
    max_generated_tokens: int | None = None
    """Tokens the job's generations may produce in all (every chunk, every retry): a generation making no
    progress is cut by it (`generation_stalled`). None: each request's own `max_tokens` only."""
    reject_ungrounded: bool = True
    keep_chunk_records: bool = False  # evaluation aid: each chunk's validated record, before merging
    calibration_dir: Path | None = None
    """A deployment's own calibrations (`abstractor calibrate`), tried before the shipped ones."""
    low_confidence_threshold: float = 0.6
    """Values whose confidence is below this are flagged `low_confidence` for a reviewer."""
    deadline: float | None = None
    """`time.monotonic()` past which no new engine call starts: the job's own time limit, which a worker
    running jobs as threads (no signal can stop a thread) enforces this way."""
    schema_bounds: SchemaBounds = field(default_factory=SchemaBounds)
    """What a tenant's schema may be (the settings' `ABSTRACTOR_SCHEMA_MAX_*`): a job checks its schema
    against them again (`service/jobs/resolve.job_schema`), for schemas registered before a bound."""


@dataclass
class _Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generate_s: float = 0.0
    calls: int = 0
    retries: int = 0
    requests: list[list[int]] = field(default_factory=list)
    """[chunk index, prompt tokens, completion tokens] of every engine request in order (retries too):
    what a benchmark replays against the raw engine."""

    def add(self, result: GenerationResult, chunk: int) -> None:
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.generate_s += result.seconds
        self.calls += 1
        self.requests.append([chunk, result.prompt_tokens, result.completion_tokens])


def _chunk_budget(engine: Engine, prefix: tuple[Message, ...], options: PipelineOptions) -> int:
    """Document tokens per chunk that still leave room for the shared prefix and a retried answer."""
    overhead = 16 * (len(prefix) + 1) + 64  # chat-template tokens per turn, plus the excerpt header
    reserve = sum(engine.count_tokens(m.content) for m in prefix) + overhead
    reserve += options.max_new_tokens * options.retry_factor
    budget = min(options.chunk_tokens, engine.context_tokens - reserve)
    if budget < 200:
        raise OutputError(
            f"context window {engine.context_tokens} too small for this schema's prompt", code="config_error"
        )
    return budget


def _check_deadline(options: PipelineOptions) -> None:
    if options.deadline is not None and time.monotonic() > options.deadline:
        raise WorkerError("the job ran past its time limit", code="time_limit")


def _stalled(options: PipelineOptions) -> OutputError:
    return OutputError(
        f"the job used its budget of {options.max_generated_tokens} generated tokens", code=GENERATION_STALLED
    )


def _within_budget(
    requests: list[GenerationRequest], options: PipelineOptions, usage: _Usage
) -> list[GenerationRequest]:
    """The requests with `max_tokens` cut to a share of what the job's token budget has left."""
    if options.max_generated_tokens is None or not requests:
        return requests
    share = (options.max_generated_tokens - usage.completion_tokens) // len(requests)
    if share < 1:
        raise _stalled(options)
    return [r if r.max_tokens <= share else dataclasses.replace(r, max_tokens=share) for r in requests]


def _validated(
    result: GenerationResult, sent: GenerationRequest, wanted: int, model: type[BaseModel], options: PipelineOptions
) -> ChunkAnswer:
    """One answer as a record; a failure no retry can mend (a broken grammar, a spent budget) says so."""
    try:
        return ChunkAnswer(result.text, result.tokens, validate_output(result, model))
    except OutputError as e:
        if e.code == "output_truncated" and sent.max_tokens < wanted:
            raise _stalled(options) from e  # cut by the job's budget, not by the request's own
        raise


def _generate_validated(
    engine: Engine,
    requests: list[GenerationRequest],
    model: type[BaseModel],
    options: PipelineOptions,
    usage: _Usage,
    first_chunk: int = 0,
) -> list[ChunkAnswer]:
    """Generate all chunks, then retry the failed ones once with a bigger budget; fail if any still fails.

    A grammar failure or a stalled generation fails at once: retried, it would fail again (and as slowly).
    """
    _check_deadline(options)
    sent = _within_budget(requests, options, usage)
    results = engine.generate(sent)
    records: list[ChunkAnswer | None] = []
    failures: list[int] = []
    for i, result in enumerate(results):
        usage.add(result, first_chunk + i)
        try:
            records.append(_validated(result, sent[i], requests[i].max_tokens, model, options))
        except OutputError as e:
            if e.code in STOPPED_CODES:
                raise
            records.append(None)
            failures.append(i)
    if failures:
        usage.retries += len(failures)
        _check_deadline(options)
        again = [
            GenerationRequest(
                messages=requests[i].messages,
                json_schema=requests[i].json_schema,
                max_tokens=requests[i].max_tokens * options.retry_factor,
                request_id=requests[i].request_id + ":retry",
            )
            for i in failures
        ]
        sent = _within_budget(again, options, usage)
        retried = engine.generate(sent)
        for j, (i, result) in enumerate(zip(failures, retried, strict=True)):
            usage.add(result, first_chunk + i)
            # A second failure propagates: no partial record.
            records[i] = _validated(result, sent[j], again[j].max_tokens, model, options)
    if options.max_generated_tokens is not None and usage.completion_tokens > options.max_generated_tokens:
        raise _stalled(options)  # an engine that wrote past a request's max_tokens
    return [r for r in records if r is not None]


def _ocr_metadata(doc: Document) -> dict[str, Any]:
    """Which pages were OCR'd, by what, how confidently; empty for documents read from text alone."""
    pages = doc.ocr_pages
    if not pages:
        return {}
    return {
        "ocr": {
            "engine": doc.ocr_engine,
            "pages": [
                {
                    "page": p.number,
                    "confidence": p.ocr_confidence,
                    "low_confidence": p.low_confidence,
                    "rotation": p.rotation,
                    "size": list(p.size) if p.size else None,
                }
                for p in pages
            ],
            "low_confidence_pages": list(doc.low_confidence_pages),
        }
    }


def plan_requests(
    doc: Document, schema: SchemaLike, engine: Engine, options: PipelineOptions
) -> tuple[list[Chunk], list[GenerationRequest]]:
    """The document's chunks and one constrained request per chunk, exactly as `extract_document` sends them.

    Public so a benchmark can send the very same prompts to the raw engine.
    """
    if not doc.text.strip():
        raise DocumentError("no_text", details={"pages_without_text": list(doc.pages_without_text)})
    json_schema = schema.json_schema()
    title = str(json_schema.get("title") or schema.ref)
    example_doc = getattr(schema, "example_document", None)
    example_record = getattr(schema, "example_record", None)
    example = (example_doc, example_record) if example_doc and example_record is not None else None
    prefix = build_messages(title, json_schema, "", 1, 1, (), example)[:-1]
    budget = _chunk_budget(engine, prefix, options)
    chunks: list[Chunk] = chunk_document(doc, engine.count_tokens, budget, options.overlap_tokens)
    constrained = generation_schema(json_schema)
    requests = [
        GenerationRequest(
            messages=build_messages(title, json_schema, c.text, c.index + 1, len(chunks), c.pages, example),
            json_schema=constrained,
            max_tokens=options.max_new_tokens,
            request_id=f"{doc.sha256[:12]}:{c.index}",
        )
        for c in chunks
    ]
    return chunks, requests


def extract_document(
    doc: Document,
    schema: SchemaLike,
    engine: Engine,
    options: PipelineOptions = PipelineOptions(),
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """A validated, grounded record: `{document, schema, data, evidence, flags, rejected, model, timings}`.

    With `reject_ungrounded` (the default) a value found nowhere in the source moves from `data` to
    `rejected`; either way it carries a `not_found_in_source` flag.
    """
    started = time.perf_counter()
    chunks, requests = plan_requests(doc, schema, engine, options)
    chunked = time.perf_counter()
    usage = _Usage()
    parts: list[tuple[dict[str, Any], list[tuple[int, int]]]] = []
    answers: list[ChunkAnswer] = []
    # One chunk per engine call keeps the progress bar honest; engines that batch get the whole list.
    step = 1 if progress else len(requests)
    json_schema = schema.json_schema()
    for lo in range(0, len(requests), step):
        batch = requests[lo : lo + step]
        for answer, chunk in zip(
            _generate_validated(engine, batch, schema.model, options, usage, first_chunk=lo),
            chunks[lo : lo + step],
            strict=True,
        ):
            # Completed per chunk, before the merge, so the merged value still agrees with the chunk answers
            # whose tokens spelled it (the confidence signals compare the two).
            answer = dataclasses.replace(answer, data=complete_party_names(answer.data, json_schema, doc.text))
            answers.append(answer)
            parts.append((answer.data, [(chunk.start, chunk.end)]))
        if progress:
            progress(min(lo + step, len(requests)), len(requests), usage.completion_tokens)
    generated = time.perf_counter()
    merged = merge_records(parts, schema.model, doc)
    evidence, flags = ground_record(merged, doc)
    odd = implausible(merged, json_schema)
    flags = [f for f in flags if f.path not in odd]
    flags += [Flag(path, IMPLAUSIBLE, f"The value is {reason}.") for path, reason in odd.items()]
    remove = set(odd)
    if options.reject_ungrounded:
        remove |= {f.path for f in flags if f.code == NOT_FOUND}
    rejected: dict[str, Any] = {}
    data = merged
    if remove:
        data, rejected = screen_ungrounded(merged, sorted(remove), schema.model)
        evidence, kept_flags = ground_record(data, doc)
        flags = [f for f in flags if f.path in remove and f.code in (NOT_FOUND, IMPLAUSIBLE)] + kept_flags
    flags += low_confidence_flags(evidence, doc)
    evidence_out = {path: [e.to_dict() for e in items] for path, items in evidence.items()}
    key = CalibrationKey(schema.ref, engine.info.model_sha256, engine.info.grammar_backend)
    scored = score_record(data, evidence_out, rejected, answers, doc, key, options.calibration_dir)
    flags += scored.flags(options.low_confidence_threshold)
    finished = time.perf_counter()
    return {
        "document": {
            "sha256": doc.sha256,
            "media_type": doc.media_type,
            "size_bytes": doc.size_bytes,
            "pages": len(doc.pages),
            "pages_without_text": list(doc.pages_without_text),
            "chars": len(doc.text),
            "chunks": len(chunks),
            **_ocr_metadata(doc),
        },
        "schema": schema.ref,
        "data": data,
        "evidence": evidence_out,
        "flags": [{"path": f.path, "code": f.code, "message": f.message} for f in flags],
        "rejected": rejected,
        "confidence": scored.confidence,
        "rejected_confidence": scored.rejected_confidence,
        "calibration": scored.calibration,
        "signals": {"values": scored.signals, "rejected": scored.rejected_signals},
        **({"chunk_records": [{"span": p[1][0], "data": p[0]} for p in parts]} if options.keep_chunk_records else {}),
        "model": engine.info.to_dict(),
        "timings": {
            "chunk_s": round(chunked - started, 3),
            "generate_s": round(generated - chunked, 3),
            "ground_s": round(finished - generated, 3),
            "total_s": round(finished - started, 3),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "engine_calls": usage.calls,
            "retries": usage.retries,
            "requests": usage.requests,
        },
    }
