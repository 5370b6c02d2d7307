"""`abstractor batch` and symlinks: a link leading out of the folder is skipped and counted, never read,
unless `--follow-symlinks`; links that stay inside are read as the files they name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from service.batches.walk import discover

REPO = Path(__file__).resolve().parents[3]
SECRET = f"OUTSIDE{uuid.uuid4().hex}"


def _archive(tmp: Path) -> Path:
    """`in/` with two notes, links out of it (a file, a folder, a dangling one) and a link inside it."""
    outside = tmp / "elsewhere"
    (outside / "deep").mkdir(parents=True)
    (outside / "patient.txt").write_text(f"{SECRET} another patient's note.\n")
    (outside / "deep" / "more.txt").write_text(f"{SECRET} more.\n")
    source = tmp / "in"
    (source / "sub").mkdir(parents=True)
    (source / "one.txt").write_text("Alpha agreed with Acme.\n")
    (source / "sub" / "two.md").write_text("# Beta agreed with Globex\n")
    (source / "leak.txt").symlink_to(outside / "patient.txt")
    (source / "sub" / "leak-dir").symlink_to(outside / "deep", target_is_directory=True)
    (source / "etc.txt").symlink_to("/etc/hostname")
    (source / "inside.txt").symlink_to(source / "one.txt")  # same bytes as one.txt: one document
    (source / "dangling.txt").symlink_to(tmp / "nowhere.txt")
    (source / "sub" / "loop").symlink_to(source, target_is_directory=True)  # inside: never walked twice
    return source


def test_walk_skips_links_that_leave_the_folder(tmp_path: Path) -> None:
    source = _archive(tmp_path)
    key, files, skipped = discover(str(source))
    assert [p.relative_to(source).as_posix() for p in files] == ["inside.txt", "one.txt", "sub/two.md"]
    assert skipped == 3  # leak.txt, etc.txt, sub/leak-dir
    assert key == str(source.resolve())


def test_walk_follows_every_link_when_asked_each_folder_once(tmp_path: Path) -> None:
    source = _archive(tmp_path)
    _, files, skipped = discover(str(source), follow_symlinks=True)
    names = sorted(p.relative_to(source).as_posix() for p in files)
    assert skipped == 0
    assert {"leak.txt", "etc.txt", "sub/leak-dir/more.txt", "one.txt", "inside.txt", "sub/two.md"} <= set(names)
    assert not any(n.startswith("sub/loop/") for n in names)  # the loop back to the root is not walked again


def test_a_glob_keeps_to_its_folder(tmp_path: Path) -> None:
    source = _archive(tmp_path)
    _, files, skipped = discover(str(source / "*.txt"))
    assert sorted(p.name for p in files) == ["one.txt"]  # inside.txt resolves to one.txt
    assert skipped == 2  # leak.txt, etc.txt
    _, followed, _ = discover(str(source / "*.txt"), follow_symlinks=True)
    assert len(followed) == 3


def _batch(source: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABSTRACTOR_")}
    env.update({"ABSTRACTOR_DATA_DIR": str(tmp / "var"), "ABSTRACTOR_ENVIRONMENT": "test"})
    return subprocess.run(
        [sys.executable, "-m", "tests.support.batch_cli", str(source), "--schema", "nda", *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("follow", [False, True], ids=["default", "follow-symlinks"])
def test_the_batch_command_reports_skipped_links_by_count(tmp_path: Path, follow: bool) -> None:
    source = _archive(tmp_path)
    done = _batch(source, tmp_path, *(["--follow-symlinks"] if follow else []))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    warnings = [json.loads(line)["warning"] for line in done.stderr.splitlines() if line.startswith('{"warning"')]
    if follow:
        assert summary["skipped_symlinks"] == 0 and warnings == []
        assert summary["documents"] >= 4  # the linked notes were read
    else:
        assert summary["skipped_symlinks"] == 3
        assert summary["documents"] == 2 and summary["duplicates"] == 1  # inside.txt is one.txt
        assert warnings == [
            {
                "code": "symlinks_skipped",
                "message": "symlinks leading out of the source were skipped; --follow-symlinks reads them",
                "details": {"skipped_symlinks": 3},
            }
        ]
        # Counts only: no link's name or target in what the command printed, and nothing of them stored.
        printed = done.stdout + done.stderr
        for leaked in ("leak.txt", "leak-dir", "etc.txt", "elsewhere", SECRET):
            assert leaked not in printed
        exports = Path(summary["exports"]["jsonl"]).read_text()
        assert SECRET not in exports and "leak" not in exports
