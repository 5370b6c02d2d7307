"""Document bytes on disk: content-addressed files under one blob directory, written atomically.

Files are written before the caller commits, so a rolled-back upload can leave a file behind; it is
named by tenant and sha256, so the next upload of the same bytes reuses it and a sweep can remove
files that no row points at. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from service.store.errors import IntegrityCheckError, StoreConfigError
from service.store.files import private_dir


def blob_relpath(tenant_id: uuid.UUID, sha256: str) -> str:
    """Where a tenant's bytes live relative to the blob directory (per tenant: easy erasure)."""
    return f"{tenant_id}/{sha256[:2]}/{sha256}"


def _resolve(blob_dir: Path, relpath: str) -> Path:
    root = blob_dir.resolve()
    path = (root / relpath).resolve()
    # A row is data; never let one point outside the blob directory.
    if not path.is_relative_to(root):
        raise IntegrityCheckError(f"blob path escapes the blob directory: {relpath!r}")
    return path


def write_blob(blob_dir: Path, relpath: str, content: bytes) -> None:
    """Write `content` at `relpath` unless an identical-size file is already there (same name, same sha)."""
    path = _resolve(blob_dir, relpath)
    if path.is_file() and path.stat().st_size == len(content):
        return
    try:
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise StoreConfigError(f"cannot write to the blob directory {blob_dir}: {e}", code="blob_dir") from e


def read_blob(blob_dir: Path, relpath: str, sha256: str) -> bytes:
    """Read the bytes back and check them against the sha256 recorded at upload."""
    path = _resolve(blob_dir, relpath)
    try:
        content = path.read_bytes()
    except FileNotFoundError as e:
        raise IntegrityCheckError(f"document bytes missing from the blob directory: {relpath}") from e
    if hashlib.sha256(content).hexdigest() != sha256:
        raise IntegrityCheckError(f"document bytes changed on disk: {relpath}")
    return content
