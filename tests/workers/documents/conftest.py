"""A guard that every test leaves no child process and no temporary file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def child_pids() -> list[int]:
    """Live or zombie children of this process, from every thread's /proc entry (Linux)."""
    pids: list[int] = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        pids.extend(int(pid) for pid in children.read_text().split())
    return pids


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point tempfile at a fresh directory, then check that the reader cleaned it and reaped its children.

    Children that were there before the test are not its own: a suite that ran earlier in this process
    may keep one for the process's life (multiprocessing's resource tracker, after a spawned pool).
    """
    private_tmp = tmp_path_factory.mktemp("reader-tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    before = set(child_pids())
    yield private_tmp
    assert sorted(set(child_pids()) - before) == [], "a child process was left running or unreaped"
    assert list(private_tmp.iterdir()) == [], "temporary files were left behind"
