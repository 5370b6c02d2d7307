"""The canary of failures: every way we know for a job to fail, and nothing of the document or the schema
in anything the process wrote.

A child process (`tests/workers/quiet_child.py`) runs each failure path with logging at DEBUG (our JSON
handler and a render-everything handler on stderr, Python warnings on): a grammar that breaks
mid-generation (the real model and llguidance), a cut answer, an answer that is not JSON, one that
fails the schema, an engine that crashes, a generation that never ends (the job's token budget), and
one cut by the embedded engine's time budget. Its stdout and stderr are captured at the file
descriptors, so what native code (llama.cpp, llguidance's Rust) writes there is caught too. The
document names a patient nobody has; the schemas carry a marker of their own in their property names
and descriptions.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.workers.quiet_child import MARKER, SCHEMA_MARKER, STALL_BUDGET_S

pytestmark = [pytest.mark.model, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

EXPECTED = {
    "grammar_failed": "grammar_failed",
    "output_truncated": "output_truncated",
    "invalid_json": "invalid_json",
    "validation_failed": "validation_failed",
    "engine_crash": "internal_error",
    "token_budget": "generation_stalled",
    "time_budget": "generation_stalled",
}


def _letters(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@pytest.fixture(scope="module")
def child(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    """The child's outcomes, stdout and stderr (run once for the module)."""
    folder = tmp_path_factory.mktemp("quiet")
    out = folder / "outcomes.json"
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "tests.workers.quiet_child", str(out), str(model_cache)],
        cwd=REPO,
        capture_output=True,
        timeout=900,
        check=False,
    )
    stdout = done.stdout.decode("utf-8", errors="replace")
    stderr = done.stderr.decode("utf-8", errors="replace")
    assert done.returncode == 0, stderr[-3000:]
    outcomes: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return outcomes, stdout, stderr


@pytest.mark.parametrize(("path", "code"), sorted(EXPECTED.items()))
def test_each_failure_names_its_own_code(child: tuple[dict[str, Any], str, str], path: str, code: str) -> None:
    outcomes, _, _ = child
    assert outcomes[path]["code"] == code, outcomes[path]


def test_the_jobs_failed_for_good(child: tuple[dict[str, Any], str, str]) -> None:
    outcomes, _, _ = child
    for path in ("invalid_json", "validation_failed", "engine_crash", "token_budget"):
        assert outcomes[path]["status"] == "failed", (path, outcomes[path])


def test_a_grammar_failure_keeps_only_the_engines_reason(child: tuple[dict[str, Any], str, str]) -> None:
    outcomes, _, _ = child
    assert "LexerTooComplex" in outcomes["grammar_failed"]["message"]


def test_the_time_budget_cuts_the_generation_itself(child: tuple[dict[str, Any], str, str]) -> None:
    outcomes, _, _ = child
    # Unbounded, the answer (a million-item array, 1,500 tokens allowed) would run for minutes; the budget
    # counts from the end of grammar setup and is checked before every token.
    assert outcomes["time_budget"]["seconds"] < STALL_BUDGET_S + 60, outcomes["time_budget"]


def test_the_markers_appear_nowhere_the_process_wrote(child: tuple[dict[str, Any], str, str]) -> None:
    outcomes, stdout, stderr = child
    assert '"msg": "job failed"' in stderr and '"level": "debug"' in stderr  # DEBUG logging really ran
    messages = json.dumps({path: outcomes[path]["message"] for path in EXPECTED})
    for marker in (MARKER, MARKER.split()[0], SCHEMA_MARKER):
        for name, written in (("stdout", stdout), ("stderr", stderr), ("error messages", messages)):
            assert marker.lower() not in written.lower(), f"{marker!r} leaked to {name}"
            # A token dump spells the name in pieces ("Z‧or‧bl‧ax‧ Quint‧avi‧us"): compare letters only.
            assert _letters(marker) not in _letters(written), f"{marker!r} leaked to {name}, in pieces"
        assert not [row for row in outcomes["audit"] if marker.lower() in row.lower()]
    assert "Error in LLMatcher" not in stderr and "lexer error" not in stderr
