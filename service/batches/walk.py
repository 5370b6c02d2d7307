"""Walking a batch's source: a folder (recursively), a glob, or one file; grouped by content.

What a folder walk picks up is decided by suffix; a glob takes whatever it matches, since the bytes
decide a document's type anyway. Files with the same sha256 are one batch item (its first file names it).

A symlink that leads out of the folder given (the glob's folder, for a glob) is skipped and counted,
so a link planted in an archive cannot pull in another patient's file or `/etc/shadow`; symlinked
folders are not descended into. `follow_symlinks` (`abstractor batch --follow-symlinks`) reads
through every link, each folder once. A single file named on the command line is read as named.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from service.errors import BatchError


class Discovered(NamedTuple):
    """What a source names: its stable key, the files (sorted), and the symlinks skipped for leaving it."""

    key: str
    files: list[Path]
    skipped_symlinks: int = 0


SUPPORTED_SUFFIXES = frozenset({".pdf", ".txt", ".md", ".markdown"})
"""What a folder walk picks up; a glob takes whatever it matches (the bytes decide the type anyway)."""
_GLOB_CHARS = frozenset("*?[")


def discover(source: str, *, follow_symlinks: bool = False) -> Discovered:
    """The source's key, the files it names (sorted) and the symlinks skipped: a folder, a glob, or one file."""
    path = Path(source).expanduser()
    if path.is_dir():
        root = path.resolve()
        files: list[Path] = []
        skipped = 0
        for candidate, inside in _walk(root, follow_symlinks):
            if not inside:
                skipped += 1
            elif candidate.suffix.lower() in SUPPORTED_SUFFIXES and candidate.is_file():
                files.append(candidate)
        return Discovered(str(root), sorted(files), skipped)
    if any(c in source for c in _GLOB_CHARS):
        pattern = str(Path(source).expanduser().absolute())
        base = _glob_base(pattern)
        matched: set[Path] = set()
        skipped = 0
        for name in glob.glob(pattern, recursive=True):
            if not Path(name).is_file():
                continue
            resolved = Path(name).resolve()
            if follow_symlinks or resolved.is_relative_to(base):
                matched.add(resolved)
            else:
                skipped += 1
        return Discovered(pattern, sorted(matched), skipped)
    if path.is_file():
        return Discovered(str(path.resolve()), [path.resolve()])
    raise BatchError(f"no such file, folder or matching glob: {source}", code="not_found")


def _walk(root: Path, follow_symlinks: bool) -> Iterator[tuple[Path, bool]]:
    """(path, whether it may be read) for every file below `root`; a symlink leaving `root` is (link, False).

    Without `follow_symlinks`, a symlinked folder is not entered (one leaving `root` is reported); with
    it, every folder is entered once by its real identity, so a link to an ancestor cannot loop.
    """
    seen: set[tuple[int, int]] = set()
    for folder, dirs, names in os.walk(root, followlinks=follow_symlinks):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        here = Path(folder)
        if not follow_symlinks:
            for name in dirs:
                if (here / name).is_symlink() and not _leads_inside(here / name, root):
                    yield here / name, False
        for name in sorted(names):
            candidate = here / name
            if follow_symlinks or not candidate.is_symlink() or _leads_inside(candidate, root):
                yield candidate, True
            else:
                yield candidate, False


def _leads_inside(link: Path, root: Path) -> bool:
    try:
        return link.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):  # dangling or looping: nothing to read
        return True


def _glob_base(pattern: str) -> Path:
    """The folder a glob searches: its path up to the first wildcard."""
    parts = Path(pattern).parts
    for i, part in enumerate(parts):
        if any(c in part for c in _GLOB_CHARS):
            return Path(*parts[:i]).resolve()
    return Path(pattern).parent.resolve()


def file_sha256(path: Path) -> str:
    """The file's sha256, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def group_by_content(files: Sequence[Path]) -> dict[str, list[Path]]:
    """sha256 -> the files with that content, in walk order (the first names the batch item)."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(file_sha256(path), []).append(path)
    return groups


def display_name(path: Path, source_key: str) -> str:
    """The item's name: the file's path below the walked folder (or the glob's), else its file name."""
    root = Path(source_key)
    try:
        return str(path.relative_to(root if root.is_dir() else root.parent))
    except ValueError:
        return path.name
