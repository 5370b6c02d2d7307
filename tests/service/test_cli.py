"""The `abstractor` command as a user runs it: a subprocess, JSON on stdout, one error line on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.registry import get_schema
from tests.support.kleister import short_set
from tests.support.records import assert_confidence_for_every_stated_value
from workers.documents import read_document

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "00a1d238e37ac225b8045a97953e845d.pdf"


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ABSTRACTOR_DATA_DIR": str(REPO / "var"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('{"error"')]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    error: dict[str, Any] = json.loads(lines[0])["error"]
    assert error["code"] and error["message"]
    return error


@pytest.mark.slow
@pytest.mark.model
def test_extract_prints_a_valid_grounded_nda_record(kleister_dir: Path) -> None:
    pdf = kleister_dir / SAMPLE
    proc = run_cli("extract", str(pdf), "--schema", "nda")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert record["schema"] == "nda@1"
    get_schema("nda").model.model_validate(record["data"])
    doc = read_document(pdf)
    assert record["document"]["sha256"] == doc.sha256
    assert record["document"]["pages"] == len(doc.pages)
    assert record["evidence"], "a real NDA yields at least one grounded value"
    for path, items in record["evidence"].items():
        for item in items:
            assert item["text"] == doc.text[item["start"] : item["end"]], path
            page = doc.page(item["page"])
            assert page.start <= item["start"] and item["end"] <= page.end, path
    assert {"engine", "model", "sha256", "grammar_backend"} <= set(record["model"])
    assert record["timings"]["completion_tokens"] > 0
    assert_confidence_for_every_stated_value(record)
    # Every stated value is either grounded or flagged: nothing passes silently.
    flagged = {f["path"] for f in record["flags"]}
    for key, value in record["data"].items():
        if value in (None, []):
            continue
        paths = [f"{key}.{i}" for i in range(len(value))] if isinstance(value, list) else [key]
        for path in paths:
            assert path in record["evidence"] or path in flagged, path


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("pypdf-enc-r2-user-password.pdf", "encrypted"),
        ("ocrmypdf-invalid.pdf", "invalid_pdf"),
        ("qpdf-deep-pages.pdf", "too_large"),
    ],
    ids=["encrypted", "invalid", "deep-pages"],
)
def test_extract_failure_is_one_json_line_and_exit_2(shared_data: Path, name: str, code: str) -> None:
    proc = run_cli("extract", str(shared_data / "hostile-pdfs" / name), "--schema", "nda", timeout=120)
    assert error_of(proc)["code"] == code
    assert proc.stdout == ""


def test_scan_with_ocr_turned_off_is_no_text(shared_data: Path) -> None:
    scan = shared_data / "hostile-pdfs" / "ocrmypdf-linn.pdf"
    proc = run_cli("extract", str(scan), "--schema", "nda", timeout=120, env={"ABSTRACTOR_OCR_ENABLED": "false"})
    assert error_of(proc)["code"] == "no_text"
    assert proc.stdout == ""


def test_unknown_schema_is_a_clear_error(kleister_dir: Path) -> None:
    assert error_of(run_cli("extract", str(kleister_dir / SAMPLE), "--schema", "nope"))["code"] == "unknown_schema"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    assert error_of(run_cli("extract", str(tmp_path / "absent.pdf"), "--schema", "nda"))["code"] == "not_found"


def test_eval_refuses_a_schema_the_dataset_is_not_labelled_for(shared_data: Path) -> None:
    proc = run_cli("eval", str(shared_data / "kleister-nda" / "train"), "--schema", "clinical_note")
    assert error_of(proc)["code"] == "schema_mismatch"


@pytest.mark.slow
@pytest.mark.model
def test_eval_scores_kleister_and_ends_with_micro_f1(kleister_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("eval", str(short_set(kleister_dir, tmp_path)), "--schema", "nda", "--limit", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("micro_f1=")
    assert 0.0 <= float(lines[-1].split("=")[1]) <= 1.0
    assert any(line.split()[0] == "party" for line in lines if line.strip())


def test_bad_settings_end_in_one_json_error_line(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Chief complaint: cough.\n")
    env = {**os.environ, "ABSTRACTOR_N_CTX": "not-a-number"}
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "extract", str(note), "--schema", "clinical_note"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    error = error_of(proc)
    assert error["code"] == "invalid_settings"
    assert [e["setting"] for e in error["details"]["errors"]] == ["ABSTRACTOR_N_CTX"]
    assert "not-a-number" not in proc.stderr, "setting values are not echoed (they may be secrets)"
