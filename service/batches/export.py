"""Exporting a batch: one row per distinct document, as JSONL (the full record), CSV or Parquet.

CSV and Parquet flatten the record's data fields into `data.<field>` columns (nested values as JSON), and
the reviewed version's into `reviewed.<field>` beside `review_state` and `reviewers`;
Parquet is written when pyarrow is installed. Rows are read a page at a time, in manifest order.
The API streams the same rows (`GET /v1/batches/{id}/results`); the CLI's batch writes files.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.errors import BatchError
from service.jobs.resolve import job_schema
from service.reviews.records import reviewed
from service.store import repositories as repo
from service.store.models import BatchItem, Job, JobStatus, Result, ReviewDecision

EXPORT_FORMATS = ("jsonl", "csv", "parquet")
_PAGE = 500
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_row(
    item: BatchItem,
    job: Job | None,
    result: Result | None,
    decisions: Sequence[ReviewDecision] = (),
    json_schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One document's line: who it is, how its job ended, (when succeeded) the record, and its review.

    `data` stays the model's output; `reviewed_data` is the current version (reviewers' decisions
    applied), `review_state` where the review is and `reviewers` who made them.
    """
    quality: dict[str, Any] = (result.flags or {}) if result is not None else {}
    review = None if result is None else reviewed(result, decisions, json_schema or {})
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
        "confidence": None if result is None else quality.get("confidence", {}),
        "calibration": None if result is None else (quality.get("calibration") or {}).get("status", "uncalibrated"),
        "review_state": None if review is None else review["state"],
        "reviewed_data": None if review is None else review["current"]["data"],
        "reviewers": None if review is None else review["reviewers"],
    }


def iter_export_rows(session_factory: sessionmaker[Session], batch_id: uuid.UUID) -> Iterator[dict[str, Any]]:
    """Every item's export row in manifest order, read a page at a time."""
    after = 0
    while True:
        with session_factory() as session:
            page = repo.batch_rows(session, batch_id, after_id=after, limit=_PAGE)
            decisions = repo.review_decisions_for_jobs(session, [job.id for _, job, _ in page if job is not None])
            schemas: dict[str, Mapping[str, Any]] = {}
            rows = []
            for item, job, result in page:
                if job is not None and job.schema_ref not in schemas:
                    schemas[job.schema_ref] = job_schema(session, job).json_schema()
                rows.append(
                    export_row(
                        item,
                        job,
                        result,
                        decisions.get(job.id, []) if job is not None else [],
                        schemas.get(job.schema_ref) if job is not None else None,
                    )
                )
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
    columns = [
        *_FIXED,
        *(f"data.{f}" for f in fields),
        "flags",
        "min_confidence",
        "confidence",
        "calibration",
        "review_state",
        *(f"reviewed.{f}" for f in fields),
        "reviewers",
    ]
    out = []
    for row in rows:
        data = row["data"] if isinstance(row["data"], dict) else {}
        flat = {c: row[c] for c in _FIXED}
        flat.update({f"data.{f}": data.get(f) for f in fields})
        flat["flags"] = row["flags"]
        scores = row.get("confidence") or {}
        flat["min_confidence"] = min(scores.values()) if scores else None
        flat["confidence"] = scores or None
        flat["calibration"] = row.get("calibration")
        flat["review_state"] = row.get("review_state")
        reviewed_data = row.get("reviewed_data")
        current: dict[str, Any] = reviewed_data if isinstance(reviewed_data, dict) else {}
        flat.update({f"reviewed.{f}": current.get(f) for f in fields})
        flat["reviewers"] = ", ".join(r["name"] for r in row.get("reviewers") or []) or None
        out.append(flat)
    return columns, out


def csv_text(rows: Sequence[dict[str, Any]]) -> Iterator[str]:
    """The CSV export, a line at a time (cells that a spreadsheet would run as formulas are quoted with ')."""
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
