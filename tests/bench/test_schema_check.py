"""schema-check: per-file results, child processes with hard time limits, the summary line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.schema_check import (
    COMPILE_TIMEOUT,
    SchemaCheckResult,
    SchemaCheckSummary,
    check_schema_file,
    check_schema_files,
)
from workers.errors import ConfigError


def _bench(shared_data: Path, schema_id: str) -> Path:
    return shared_data / "jsonschemabench" / f"{schema_id}.json"


CASES = {
    "Github_easy---o78783": ("llguidance", "compiled", 8),
    "Github_medium---o56020": ("llguidance", "compiled", 10),
    "Handwritten---dep7": ("llguidance", "unsupported", 5),
    "Github_easy---o14406": ("outlines_core", "unsupported", 2),
    "Github_medium---o39426": ("outlines_core", "compiled", 7),
}


@pytest.mark.parametrize(("schema_id", "case"), CASES.items(), ids=CASES.keys())
def test_check_schema_file(shared_data: Path, schema_id: str, case: tuple[str, str, int]) -> None:
    backend, status, n_tests = case
    result = check_schema_file(_bench(shared_data, schema_id), backend)
    assert (result.status, result.n_tests, result.schema_valid) == (status, n_tests, True)
    # Instances are judged by our validator whether or not the backend compiled the schema.
    assert result.n_invalid_accepted == 0 and result.n_valid_rejected == 0
    if status == "compiled":
        assert result.reason == "" and result.grammar_invalid_accepted is not None
    else:
        assert result.reason.startswith(backend) and result.grammar_invalid_accepted is None


def test_llguidance_grammar_is_exact_on_its_tests(shared_data: Path) -> None:
    result = check_schema_file(_bench(shared_data, "Github_medium---o56020"), "llguidance")
    assert (result.grammar_invalid_accepted, result.grammar_valid_rejected) == (0, 0)


def test_meta_invalid_schema_is_unsupported_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema": {"type": "strin"}, "tests": [{"valid": True, "data": 1}]}))
    result = check_schema_file(path, "llguidance")
    assert (result.status, result.schema_valid, result.n_tests) == ("unsupported", False, 1)
    assert result.reason.startswith("invalid JSON Schema")


@pytest.mark.slow
def test_pool_times_out_isolates_faults_and_keeps_order(shared_data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{ this is not json")
    slow = _bench(shared_data, "Github_medium---o9872")  # outlines-core needs minutes for its DFA
    files = [_bench(shared_data, "Github_easy---o10008"), slow, broken, _bench(shared_data, "Handwritten---dep7")]
    seen: list[tuple[int, int]] = []
    summary = check_schema_files(files, "outlines_core", 1.0, lambda done, total: seen.append((done, total)))

    by_id = {r.schema_id: r for r in summary.results}
    assert [r.schema_id for r in summary.results] == [f.stem for f in files]
    assert by_id["Github_easy---o10008"].status == "compiled"
    timed_out = by_id["Github_medium---o9872"]
    assert (timed_out.status, timed_out.reason) == ("unsupported", COMPILE_TIMEOUT)
    # The validation half ran before the compile timed out, so its counts are kept.
    assert (timed_out.schema_valid, timed_out.n_tests, timed_out.n_invalid_accepted) == (True, 14, 0)
    assert by_id["broken"].status == "crashed" and "JSONDecodeError" in by_id["broken"].reason
    assert by_id["Handwritten---dep7"].status == "unsupported"
    assert seen[-1] == (4, 4) and len(seen) == 4
    assert summary.last_line() == "compiled=1 unsupported=2 crashed=1 accepted_invalid=0"


def test_summary_lines() -> None:
    summary = SchemaCheckSummary(
        "llguidance",
        [
            SchemaCheckResult("a", "llguidance", "compiled", n_tests=3, grammar_invalid_accepted=0),
            SchemaCheckResult("b", "llguidance", "unsupported", "llguidance: Unknown format: path", n_valid_rejected=1),
            SchemaCheckResult("c", "llguidance", "unsupported", "llguidance: Unknown format: topic"),
        ],
        seconds=1.25,
    )
    assert summary.last_line() == "compiled=1 unsupported=2 crashed=0 accepted_invalid=0"
    assert re.fullmatch(
        r"rejected_valid=1 grammar_accepted_invalid=0 grammar_rejected_valid=0 seconds=1\.2", summary.detail_line()
    )
    assert summary.unsupported_reasons() == {"llguidance: Unknown format: <name>": 2}


def test_unknown_or_missing_backend_fails_before_any_work(shared_data: Path) -> None:
    with pytest.raises(ConfigError):
        check_schema_files([_bench(shared_data, "Github_easy---o10008")], "guidance")
