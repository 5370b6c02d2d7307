"""Walking a batch's source: a folder (recursively), a glob, or one file; grouped by content.

What a folder walk picks up is decided by suffix; a glob takes whatever it matches, since the bytes
decide a document's type anyway. Files with the same sha256 are one batch item (its first file names it).
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Sequence
from pathlib import Path

from service.errors import BatchError

SUPPORTED_SUFFIXES = frozenset({".pdf", ".txt", ".md", ".markdown"})
"""What a folder walk picks up; a glob takes whatever it matches (the bytes decide the type anyway)."""
_GLOB_CHARS = frozenset("*?[")


def discover(source: str) -> tuple[str, list[Path]]:
    """(the source's stable key, the files it names, sorted): a folder (walked), a glob, or one file."""
    path = Path(source).expanduser()
    if path.is_dir():
        root = path.resolve()
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES]
        return str(root), sorted(files)
    if any(c in source for c in _GLOB_CHARS):
        pattern = str(Path(source).expanduser().absolute())
        files = [Path(p).resolve() for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
        return pattern, sorted(set(files))
    if path.is_file():
        return str(path.resolve()), [path.resolve()]
    raise BatchError(f"no such file, folder or matching glob: {source}", code="not_found")


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
