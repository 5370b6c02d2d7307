"""`abstractor extract` shows its progress on a terminal and nothing when piped."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli_common import ChunkProgress
from tests.service.test_cli import REPO


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_is_drawn_only_on_a_terminal() -> None:
    piped = ChunkProgress(io.StringIO())
    assert piped.callback is None
    term = Terminal()
    line = ChunkProgress(term)
    assert line.callback is not None
    line.callback(1, 3, 40)
    line.callback(3, 3, 120)
    line.close()
    text = term.getvalue()
    assert "chunk 1 of 3" in text and "chunk 3 of 3" in text and "tokens/s" in text and text.endswith("\n")


@pytest.mark.slow
@pytest.mark.model
def test_extract_draws_progress_on_a_terminal_and_stays_quiet_when_piped(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Chief complaint: cough for two weeks.\n58-year-old male.\nAssessment: acute bronchitis.\n")
    args = [sys.executable, "-m", "service.cli", "extract", str(note), "--schema", "clinical_note"]
    env = {**os.environ, "ABSTRACTOR_DATA_DIR": str(REPO / "var")}
    piped = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=7200, check=False)
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert "chunk" not in piped.stderr
    leader, follower = pty.openpty()
    with open(tmp_path / "out.json", "wb") as out:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break  # the child closed the terminal
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=7200) == 0
    os.close(leader)
    assert b"extracting: chunk 1 of 1" in seen and b"tokens/s" in seen
