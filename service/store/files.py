"""Private files on disk: folders we create are 0700, files we create are 0600, whatever the umask says.

The store, blobs, upload temp files and the model cache hold tenants' documents (or are keyed by them),
so nobody but the service's own user may list or read them. Modes are set when we create a path; an
existing database file (and its `-wal`/`-shm`) is tightened too when we own it, since SQLite gives its
side files the database file's mode.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` and every missing parent as 0700 (existing folders are left as they are)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue  # another thread or process made it meanwhile
        os.chmod(folder, DIR_MODE)  # exactly 0700, whatever the umask took away
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty as 0600 if it is missing (parents 0700); tighten it to 0600 if we own it."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        tighten(path)
    else:
        os.close(fd)
        os.chmod(path, FILE_MODE)
    return path


def tighten(path: Path) -> None:
    """Drop group and other bits of a regular file we own (left alone when missing or someone else's)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)


def private_sqlite(database: Path) -> None:
    """The SQLite file as 0600 before SQLite opens it, so its `-wal` and `-shm` are 0600 as well."""
    private_file(database)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(database.with_name(database.name + suffix))
