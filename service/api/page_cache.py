"""Rendered page images kept on disk, so a reviewer paging back and forth does not start a child each time.

Files live under `DATA_DIR/cache/pages/<document id>/` (0700 folders, 0600 files, like every other
file keyed by a tenant's document); a document id belongs to one tenant, so the key cannot cross
tenants. The oldest files go once the folder holds more than its budget. Reads are audited by the
caller whether the image came from here or from pdfium.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from service.store.files import FILE_MODE, private_dir


@dataclass(frozen=True)
class CachedPage:
    """A page image and the page's size as displayed, in points."""

    png: bytes
    width_pt: float
    height_pt: float


class PageCache:
    """A size-bounded folder of PNGs keyed by (document id, page, longer side in pixels)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _path(self, document_id: uuid.UUID, page: int, side: int) -> Path:
        return self.root / str(document_id) / f"{page}-{side}.png"

    def get(self, document_id: uuid.UUID, page: int, side: int) -> CachedPage | None:
        """The cached image, or None."""
        path = self._path(document_id, page, side)
        try:
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            png = path.read_bytes()
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return CachedPage(png, float(meta["width_pt"]), float(meta["height_pt"]))

    def put(self, document_id: uuid.UUID, page: int, side: int, item: CachedPage) -> None:
        """Keep an image (atomically: a reader never sees half a file), then trim the folder to its budget."""
        if self.max_bytes <= 0 or len(item.png) > self.max_bytes:
            return
        path = self._path(document_id, page, side)
        private_dir(path.parent)
        meta = json.dumps({"width_pt": item.width_pt, "height_pt": item.height_pt}).encode()
        for target, content in ((path.with_suffix(".json"), meta), (path, item.png)):
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.chmod(name, FILE_MODE)
            os.replace(name, target)
        self._trim()

    def _trim(self) -> None:
        files = []
        for png in self.root.glob("*/*.png"):
            with contextlib.suppress(OSError):
                info = png.stat()
                files.append((info.st_mtime, info.st_size, png))
        total = sum(size for _, size, _ in files)
        for _, size, png in sorted(files):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                png.unlink()
                png.with_suffix(".json").unlink()
            total -= size
