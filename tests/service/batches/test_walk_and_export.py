"""Walking a source (folder, glob, file) and the export formats, on a real SQLite store."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from service.batches.export import _cell, export_batch
from service.batches.walk import discover, group_by_content
from service.config import Settings
from service.errors import BatchError
from service.processes.batch import run_batch
from service.store import repositories as repo
from service.store.models import Job, JobStatus
from service.store.session import make_engine, make_session_factory
from tests.support.engines import DeterministicEngine
from tests.support.records import assert_confidence_for_every_stated_value
from workers.errors import WorkerError


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "one.txt").write_text("Alpha note.\n")
    (root / "a" / "two.md").write_text("# Beta\n")
    (root / "a" / "b" / "three.TXT").write_text("Alpha note.\n")  # same bytes as one.txt
    (root / "a" / "skip.tsv").write_text("x\ty\n")


def test_discover_folder_glob_and_file(tmp_path: Path) -> None:
    _tree(tmp_path)
    key, files, skipped = discover(str(tmp_path))
    assert skipped == 0
    assert key == str(tmp_path.resolve())
    assert [p.name for p in files] == ["three.TXT", "two.md", "one.txt"]
    assert sorted(len(g) for g in group_by_content(files).values()) == [1, 2]
    _, globbed, _ = discover(str(tmp_path / "**" / "*.tsv"))
    assert [p.name for p in globbed] == ["skip.tsv"]  # a glob takes what it names
    assert discover(str(tmp_path / "one.txt"))[1] == [(tmp_path / "one.txt").resolve()]
    with pytest.raises(BatchError) as caught:
        discover(str(tmp_path / "missing"))
    assert caught.value.code == "not_found"


def test_batch_exports_agree_and_bad_files_are_counted(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "delta.txt").write_text("Delta note.\n")
    (source / "gamma.txt").write_text("Gamma note.\n")
    (source / "notes.bin").write_bytes(b"\x00\x01binary")  # not walked (suffix)
    (source / "fake.txt").write_bytes(b"\xff\xfe\x00binary")  # walked, then refused by content
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite:///{tmp_path / 's.db'}", data_dir=tmp_path / "var", environment="test"
    )
    summary = run_batch(settings, str(source), "nda", out_dir=tmp_path / "out", engine=DeterministicEngine())
    assert (summary.files, summary.documents, summary.rejected) == (3, 2, {"unsupported_media_type": 1})
    assert (summary.succeeded, summary.failed, summary.waiting) == (2, 0, 0)
    rows = [json.loads(line) for line in Path(summary.exports["jsonl"]).read_text().splitlines()]
    assert {r["name"]: r["data"]["jurisdiction"] for r in rows} == {"delta.txt": "Delta", "gamma.txt": "Gamma"}
    for row in rows:  # confidence and its calibration status travel with every exported record
        assert_confidence_for_every_stated_value({**row, "calibration": {"status": row["calibration"]}})
    with Path(summary.exports["csv"]).open(newline="") as f:
        table = {r["name"]: r for r in csv.DictReader(f)}
    assert {n: r["data.jurisdiction"] for n, r in table.items()} == {"delta.txt": "Delta", "gamma.txt": "Gamma"}
    for name, r in table.items():
        scores = json.loads(r["confidence"])
        assert float(r["min_confidence"]) == min(scores.values()) and r["calibration"] == "uncalibrated", name
    parquet = pq.read_table(summary.exports["parquet"]).to_pylist()
    assert {r["name"]: r["data.jurisdiction"] for r in parquet} == {"delta.txt": "Delta", "gamma.txt": "Gamma"}
    assert all(r["min_confidence"] is not None for r in parquet)

    engine = make_engine(settings.database_url)
    try:
        again = export_batch(make_session_factory(engine), uuid.UUID(summary.batch_id), tmp_path / "again", ["jsonl"])
    finally:
        engine.dispose()
    assert Path(again["jsonl"]).read_text() == Path(summary.exports["jsonl"]).read_text()


@pytest.mark.parametrize(
    ("value", "cell"),
    [("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("@cmd", "'@cmd"), ("-2", "'-2"), ("Acme", "Acme"), (3, 3)],
    ids=["equals", "plus", "at", "minus", "plain", "number"],
)
def test_csv_cells_never_start_a_formula(value: object, cell: object) -> None:
    assert _cell(value) == cell


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        data_dir=tmp_path / "var",
        environment="test",
        **overrides,
    )


def test_failed_documents_stay_done_unless_retried(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.txt").write_text("Epsilon note.\n")
    (source / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a pdf\n")
    settings = _settings(tmp_path)
    first = run_batch(settings, str(source), "nda", engine=DeterministicEngine())
    assert (first.succeeded, first.failed) == (1, 1)
    again = run_batch(settings, str(source), "nda", engine=DeterministicEngine())
    assert (again.already_done, again.new_jobs, again.retried, again.failed) == (2, 0, 0, 1)
    retried = run_batch(settings, str(source), "nda", engine=DeterministicEngine(), retry=True)
    assert (retried.already_done, retried.retried, retried.succeeded, retried.failed) == (1, 1, 1, 1)
    assert (first.batch_id, again.batch_id) == (retried.batch_id, retried.batch_id)  # one manifest, resumed


def test_an_engine_that_cannot_load_fails_the_command_not_the_documents(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "note.txt").write_text("Zeta note.\n")
    settings = _settings(tmp_path, model_path=tmp_path / "missing.gguf", model_sha256="0" * 64)
    with pytest.raises(WorkerError):
        run_batch(settings, str(source), "nda")
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            assert [j.status for j in session.scalars(select(Job))] == [JobStatus.QUEUED]
    finally:
        engine.dispose()


def test_with_a_broker_the_batch_only_enqueues(tmp_path: Path) -> None:
    """The relay and Celery workers do the work; `--no-wait` returns after the outbox rows are written."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        (source / f"n{i}.txt").write_text(f"Eta note {i}.\n")
    settings = _settings(tmp_path, broker_url="redis://127.0.0.1:6379/0")
    summary = run_batch(settings, str(source), "nda", engine=DeterministicEngine(), wait=False)
    assert (summary.new_jobs, summary.waiting, summary.succeeded, summary.exports) == (3, 3, 0, {})
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            jobs = list(session.scalars(select(Job)))
            assert {j.status for j in jobs} == {JobStatus.QUEUED}
            assert repo.jobs_with_unsent_outbox(session, [j.id for j in jobs]) == {j.id for j in jobs}
            assert len(jobs) == 3
    finally:
        engine.dispose()
