"""How the parent reads every way a child can end: result, report, crash, memory, CPU, clock, output."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from workers.documents import DocumentError
from workers.documents.sandbox import ChildLimits, run_in_child

CHILD = "tests.workers.documents.misbehaving_child"
LIMITS = ChildLimits(timeout_s=5.0, memory_mb=256, output_bytes=1024 * 1024)


def run(how: str, tmp_path: Path, limits: ChildLimits = LIMITS) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        run_in_child(CHILD, {"how": how}, limits=limits, workdir=tmp_path)
    return caught.value


def test_result_comes_back(tmp_path: Path) -> None:
    run_ = run_in_child(CHILD, {"how": "ok", "echo": "héllo\x00"}, limits=LIMITS, workdir=tmp_path)
    assert run_.payload == {"echo": "héllo\x00"}
    assert run_.peak_rss_mb > 0


def test_reported_error_is_raised(tmp_path: Path) -> None:
    error = run("report", tmp_path)
    assert error.code == "invalid_pdf"
    assert error.details["exception"] == "Demo"


@pytest.mark.parametrize(("how", "reason"), [("segfault", "signal"), ("exit", "exit_code"), ("no_result", "reason")])
def test_crashes_are_parser_crashed(how: str, reason: str, tmp_path: Path) -> None:
    error = run(how, tmp_path)
    assert error.code == "parser_crashed"
    assert reason in error.details


def test_a_large_parent_does_not_make_a_small_crash_look_out_of_memory(tmp_path: Path) -> None:
    # The child inherits the parent's RSS high-water mark across exec: with a model loaded in the parent,
    # every crash of a small child used to read as "near the memory limit".
    ballast = bytearray(b"\x01") * (300 * 1024 * 1024)
    error = run("segfault", tmp_path)
    assert len(ballast) > LIMITS.memory_mb * 1024 * 1024
    assert error.code == "parser_crashed", error.details
    assert error.details["child_peak_rss_mb"] < LIMITS.memory_mb


def test_segfault_names_the_signal(tmp_path: Path) -> None:
    assert run("segfault", tmp_path).details["signal"] == "SIGSEGV"


def test_memory_hog_is_too_large(tmp_path: Path) -> None:
    error = run("hog_memory", tmp_path)
    assert error.code == "too_large"
    assert error.details["limit"] == "memory_mb"


def test_wall_clock_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    error = run("sleep", tmp_path, ChildLimits(timeout_s=0.5, memory_mb=256, output_bytes=1024))
    assert error.code == "timeout"
    assert time.monotonic() - started < 2


def test_cpu_limit_is_a_timeout(tmp_path: Path) -> None:
    error = run("spin", tmp_path)
    assert error.code == "timeout"
    assert error.details["signal"] == "SIGXCPU"


def test_output_limit_is_too_large(tmp_path: Path) -> None:
    error = run("write_too_much", tmp_path)
    assert error.code == "too_large"
    assert error.details["limit"] == "output"


def test_grandchildren_are_killed_too(tmp_path: Path) -> None:
    # The autouse fixture checks for leftover children; the grandchild must die with the session.
    error = run("fork_and_sleep", tmp_path, ChildLimits(timeout_s=0.5, memory_mb=256, output_bytes=1024))
    assert error.code == "timeout"
