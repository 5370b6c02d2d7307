"""`abstractor eval` and `abstractor calibrate` as a user runs them, with the real embedded model.

An evaluation killed half-way and run again with the same predictions file runs only the missing
documents; `calibrate` refits from the gold labels without running the model again, and the refit
changes the confidences both `eval` and `extract` give.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluation.runner import read_predictions
from tests.service.test_cli import REPO, run_cli
from tests.support.kleister import short_set

pytestmark = [pytest.mark.slow, pytest.mark.model]
DOCS = "3"
NO_BOUND = 7200.0
"""Only a stop for a wedged run: model time is never what these tests bound."""


def _complete_lines(path: Path) -> int:
    return len(read_predictions(path))


def test_a_killed_eval_resumes_and_a_refit_calibration_changes_the_confidences(
    tmp_path: Path, kleister_dir: Path
) -> None:
    predictions = tmp_path / "predictions.jsonl"
    short = short_set(kleister_dir, tmp_path)
    args = ["eval", str(short), "--schema", "nda", "--limit", DOCS, "--predictions", str(predictions)]
    env = {**os.environ, "ABSTRACTOR_DATA_DIR": str(REPO / "var"), "ABSTRACTOR_CALIBRATION_DIR": str(tmp_path / "none")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + NO_BOUND
    while _complete_lines(predictions) < 1:
        assert proc.poll() is None, "eval ended before it was killed"
        assert time.monotonic() < deadline, "no document finished"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = read_predictions(predictions)
    assert 1 <= len(before) < int(DOCS)

    again = run_cli(*args, timeout=NO_BOUND, env={"ABSTRACTOR_CALIBRATION_DIR": str(tmp_path / "none")})
    assert again.returncode == 0, again.stderr[-2000:]
    first = again.stdout.splitlines()[0]
    assert f"documents={DOCS} ran={int(DOCS) - len(before)} resumed={len(before)}" in first, first
    after = read_predictions(predictions)
    assert set(after) >= set(before) and all(after[name] == line for name, line in before.items())
    # Scored under whatever applies now: a shipped calibration for this model, or the uncalibrated score.
    assert "confidence (calibrated):" in again.stdout or "confidence (uncalibrated):" in again.stdout
    assert again.stdout.splitlines()[-1].startswith("micro_f1=")
    assert again.stdout.splitlines()[-2].startswith("ece=")

    fitted = run_cli("calibrate", *args[1:], "--split", "all", "--out", str(tmp_path / "cal"), timeout=NO_BOUND)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    summary = json.loads(fitted.stdout.splitlines()[-1])
    assert Path(summary["calibration"]).is_file() and summary["values"] >= 8  # 12 (9 right) on this model
    assert 0 < summary["right"] < summary["values"]
    assert read_predictions(predictions) == after  # refitted from the file: the model did not run again

    calibrated = run_cli(*args, timeout=NO_BOUND, env={"ABSTRACTOR_CALIBRATION_DIR": str(tmp_path / "cal")})
    assert calibrated.returncode == 0, calibrated.stderr[-2000:]
    assert "confidence (calibrated):" in calibrated.stdout
    assert calibrated.stdout.splitlines()[-2] != again.stdout.splitlines()[-2]  # other confidences, other figures

    pdf = kleister_dir / next(iter(after))
    plain = run_cli(
        "extract",
        str(pdf),
        "--schema",
        "nda",
        timeout=NO_BOUND,
        env={"ABSTRACTOR_CALIBRATION_DIR": str(tmp_path / "none")},
    )
    refit = run_cli(
        "extract",
        str(pdf),
        "--schema",
        "nda",
        timeout=NO_BOUND,
        env={"ABSTRACTOR_CALIBRATION_DIR": str(tmp_path / "cal")},
    )
    assert plain.returncode == refit.returncode == 0, plain.stderr[-2000:] + refit.stderr[-2000:]
    a, b = json.loads(plain.stdout), json.loads(refit.stdout)
    assert b["calibration"]["status"] == "calibrated" and b["calibration"]["name"] == Path(summary["calibration"]).stem
    assert a["data"] == b["data"] and set(a["confidence"]) == set(b["confidence"])
    assert a["confidence"] != b["confidence"]
