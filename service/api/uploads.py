"""Streaming multipart upload with the size limit enforced as bytes arrive, not after the fact.

FastAPI's `UploadFile` parses the whole body first (spooling it to disk), so a 200 MB upload would be
read in full before anyone could refuse it. Here the body is fed chunk by chunk to python-multipart's
push parser; the file part goes to a private temporary file, and the upload is refused (413) as soon
as the file or the body passes its limit, having read at most one transport chunk past it. The
temporary file is removed however the request ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.api.errors import ApiError, PayloadTooLargeError, UnprocessableError, UnsupportedMediaTypeError
from service.store.files import private_dir

log = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 64 * 1024
"""Multipart framing and small fields allowed on top of the document limit."""

FILE_FIELD = "file"

# Close the connection after a refusal: the client may still be sending, and reading the rest of a
# 200 MB body just to discard it is the work the limit exists to avoid.
CLOSE = {"Connection": "close"}


@dataclass
class SpooledUpload:
    """The file part of a multipart upload, on disk; `bytes_read` counts the whole request body."""

    path: Path
    size: int
    filename: str | None
    declared_type: str | None
    bytes_read: int

    def read(self) -> bytes:
        """The uploaded bytes (bounded by the limit, so safe to hold in memory)."""
        return self.path.read_bytes()


class _Parts:
    """python-multipart callbacks: spool the `file` part, ignore the rest, track sizes."""

    def __init__(self, out: Any, max_file_bytes: int) -> None:
        self.out = out
        self.max_file_bytes = max_file_bytes
        self.size = 0
        self.too_large = False
        self.found = False
        self.filename: str | None = None
        self.declared_type: str | None = None
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._current_is_file = False
        self._done_with_file = False
        self.ended = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._current_is_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == FILE_FIELD and not self._done_with_file:
            self._current_is_file = True
            self.found = True
            raw_name = options.get(b"filename")
            self.filename = raw_name.decode("utf-8", "replace")[:255] if raw_name else None
            declared = self._headers.get(b"content-type")
            self.declared_type = declared.decode("latin-1")[:200] if declared else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._current_is_file or self.too_large:
            return
        self.size += end - start
        if self.size > self.max_file_bytes:
            self.too_large = True
            return
        self.out.write(data[start:end])

    def _part_end(self) -> None:
        if self._current_is_file:
            self._current_is_file = False
            self._done_with_file = True

    def _end(self) -> None:
        # Only the closing boundary (`--boundary--`) ends the body; python-multipart's finalize() checks nothing.
        self.ended = True


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the upload is larger than the limit of {max_bytes} bytes",
        details={"limit": "max_document_bytes", "max": max_bytes},
        headers=CLOSE,
    )


@contextlib.asynccontextmanager
async def spool_upload(
    request: Request,
    *,
    max_bytes: int,
    tmp_dir: Path,
    on_bytes: Callable[[int], None] | None = None,
) -> AsyncIterator[SpooledUpload]:
    """Read a `multipart/form-data` body with a `file` part into a temporary file, within `max_bytes`.

    Raises 413 (too large), 415 (not multipart), 400 (`truncated_upload`: no closing boundary) or 422
    (no `file` part, broken framing). The file is deleted when the block exits.
    """
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaTypeError(
            "upload the document as multipart/form-data with a 'file' part",
            code="unsupported_request_type",
            details={"expected": "multipart/form-data"},
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise UnprocessableError("multipart body without a boundary", code="invalid_multipart")
    body_limit = max_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        # Refused on the header alone: not one body byte read.
        raise _too_large(max_bytes)

    private_dir(tmp_dir)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
    path = Path(name)
    bytes_read = 0
    try:
        with os.fdopen(fd, "wb") as out:
            parts = _Parts(out, max_bytes)
            try:
                parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
            except ValueError as e:
                raise UnprocessableError("invalid multipart boundary", code="invalid_multipart") from e
            try:
                async for chunk in request.stream():
                    bytes_read += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                    if bytes_read > body_limit:
                        raise _too_large(max_bytes)
                    parser.write(chunk)
                    if parts.too_large:
                        raise _too_large(max_bytes)
                parser.finalize()
            except ClientDisconnect as e:
                raise ApiError("the client went away mid-upload", code="client_disconnected") from e
            except MultipartParseError as e:
                raise UnprocessableError(
                    "the multipart body is malformed", code="invalid_multipart", details={"reason": type(e).__name__}
                ) from e
        if not parts.ended:
            # The body stopped inside a part (or before the closing boundary): what arrived may be any prefix
            # of the document, so nothing of it is kept.
            raise ApiError(
                "the multipart body ends before its closing boundary",
                code="truncated_upload",
                status_code=400,
                details={"bytes_read": bytes_read},
            )
        if not parts.found:
            raise UnprocessableError(
                f"the multipart body has no '{FILE_FIELD}' part", code="missing_file", details={"field": FILE_FIELD}
            )
        yield SpooledUpload(
            path=path,
            size=parts.size,
            filename=parts.filename,
            declared_type=parts.declared_type,
            bytes_read=bytes_read,
        )
    except PayloadTooLargeError:
        log.info("upload refused", extra={"reason": "too_large", "bytes_read": bytes_read, "limit": max_bytes})
        raise
    finally:
        path.unlink(missing_ok=True)
