"""`abstractor export-gold`: finished reviews of one schema written as a gold set `abstractor eval` scores.

The folder gets `reviewed.jsonl` (per document: its file name, schema, job, the reviewed record's data,
each field's decision and the reviewers), the documents under `documents/` (named by sha256), and
two predictions files in `abstractor eval`'s format, so the set can be scored without running a model:
`predictions-reviewed.jsonl` (the reviewed records: F1 1.0 by construction) and `predictions-model.jsonl`
(the model's own records: the reviewers' corrections and rejections are exactly its errors). Every
document read is audited in the export's one transaction; files are 0600 in 0700 folders.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from service.jobs.resolve import job_schema
from service.reviews.current import latest_by_field
from service.reviews.records import reviewed
from service.store import audit
from service.store import repositories as repo
from service.store.files import FILE_MODE, private_dir
from service.store.models import AuditOutcome, ReviewAction

REVIEWED_FILE: Final = "reviewed.jsonl"
DOCUMENTS_DIR: Final = "documents"
_SUFFIX: Final = {"application/pdf": ".pdf", "text/markdown": ".md"}


@dataclass(frozen=True)
class GoldSummary:
    """What was written: the folder, how many reviewed documents, and the files."""

    out: str
    documents: int
    reviewed: str
    predictions_reviewed: str
    predictions_model: str


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


def export_gold(
    session_factory: sessionmaker[Session],
    *,
    tenant_id: uuid.UUID,
    schema_name: str,
    out: Path,
    batch_id: uuid.UUID | None = None,
    blob_dir: Path | None = None,
    actor: str = "cli",
) -> GoldSummary:
    """Write every finished review of `schema_name` (in `batch_id` when given) of the tenant to `out`."""
    documents_dir = private_dir(out / DOCUMENTS_DIR)
    gold: list[dict[str, Any]] = []
    as_reviewed: list[dict[str, Any]] = []
    as_model: list[dict[str, Any]] = []
    with session_factory.begin() as session:
        rows = repo.reviewable_jobs(session, tenant_id, schema_name=schema_name, batch_id=batch_id)
        for job, result, last in sorted(rows, key=lambda r: r[0].created_at):
            if last is not ReviewAction.FINISH:
                continue
            document = repo.get_document(session, tenant_id, job.document_id)
            if document is None:
                continue
            decisions = repo.list_review_decisions(session, tenant_id, job.id)
            view = reviewed(result, decisions, job_schema(session, job).json_schema())
            name = document.sha256 + _SUFFIX.get(document.media_type, ".txt")
            path = documents_dir / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(repo.read_document_bytes(session, document, blob_dir=blob_dir))
            audit.record_event(
                session,
                actor=actor,
                tenant_id=tenant_id,
                action="review.export_gold",
                request_id=None,
                target_type="job",
                target_id=str(job.id),
                outcome=AuditOutcome.SUCCESS,
                details={"document_id": str(document.id)},
            )
            data = view["current"]["data"]
            run = {"schema": job.schema_ref, "model": job.model, "backend": job.backend}
            gold.append(
                {
                    "name": name,
                    "schema": job.schema_ref,
                    "job_id": str(job.id),
                    "document_id": str(document.id),
                    "data": data,
                    "decisions": {f: d.action for f, d in latest_by_field(view["decisions"]).items()},
                    "reviewers": view["reviewers"],
                }
            )
            as_reviewed.append({"name": name, "gold": data, "run": run, **view["current"]})
            as_model.append({"name": name, "gold": data, "run": run, **view["model"]})
    _write_lines(out / REVIEWED_FILE, gold)
    _write_lines(out / "predictions-reviewed.jsonl", as_reviewed)
    _write_lines(out / "predictions-model.jsonl", as_model)
    return GoldSummary(
        out=str(out),
        documents=len(gold),
        reviewed=str(out / REVIEWED_FILE),
        predictions_reviewed=str(out / "predictions-reviewed.jsonl"),
        predictions_model=str(out / "predictions-model.jsonl"),
    )
