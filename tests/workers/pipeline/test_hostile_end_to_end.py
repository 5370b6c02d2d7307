"""Every hostile PDF, read and extracted end to end with the real model: a record or a clear error code."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from schemas.registry import get_schema
from workers.documents import DOCUMENT_ERROR_CODES, read_document
from workers.errors import WorkerError
from workers.pipeline.run import extract_document

HOSTILE = sorted((Path(__file__).resolve().parents[3].parent / "shared/data/hostile-pdfs").glob("*.pdf"))


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("pdf", HOSTILE, ids=[p.name for p in HOSTILE])
def test_hostile_pdf_ends_in_a_record_or_a_clear_error(pdf: Path, engine: object) -> None:
    started = time.perf_counter()
    try:
        try:
            doc = read_document(pdf)
        finally:
            # A liveness bound on the read (the parse a hostile file attacks), with room for a machine twice
            # as slow as the sandbox's own 15 s limit; the model's run is bounded by its token budget.
            assert time.perf_counter() - started < 40.0
        record = extract_document(doc, get_schema("nda"), engine)  # type: ignore[arg-type]
    except WorkerError as e:
        assert e.code in DOCUMENT_ERROR_CODES, e.code
        assert e.message
    else:
        get_schema("nda").model.model_validate(record["data"])
        for items in record["evidence"].values():
            for item in items:
                assert doc.text[item["start"] : item["end"]] == item["text"]
