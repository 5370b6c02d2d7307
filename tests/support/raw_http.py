"""HTTP/1.1 over a bare socket, for requests no client library would send: slow, cut, oversized, broken."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    """What came back: status, lower-cased headers, body; `elapsed_s` from the request's first byte."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_s: float
    closed: bool = False
    raw: bytes = field(default=b"", repr=False)

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def open_socket(base_url: str, timeout_s: float = 10.0) -> socket.socket:
    """A connected TCP socket to the server of `base_url`."""
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


def read_response(sock: socket.socket, started: float, timeout_s: float = 10.0) -> RawResponse | None:
    """Read one response (until its Content-Length, or until the server closes); None if none came."""
    sock.settimeout(timeout_s)
    data = b""
    closed = False
    while True:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            length = int(headers.get("content-length", "-1"))
            body = data[head_end + 4 :]
            if 0 <= length <= len(body):
                break
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except TimeoutError:
            break
        if not chunk:
            closed = True
            break
        data += chunk
    elapsed = time.monotonic() - started
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = data[:head_end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    body = data[head_end + 4 :]
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    if not closed:
        closed = closes_soon(sock)
    return RawResponse(status=status, headers=headers, body=body, elapsed_s=elapsed, closed=closed, raw=data)


def closes_soon(sock: socket.socket, within_s: float = 2.0) -> bool:
    """Whether the server closes the connection within `within_s` (reading and discarding what comes)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    return True


def send_slowly(sock: socket.socket, data: bytes, *, every_s: float, until: float) -> bool:
    """Send `data` a byte at a time, one every `every_s`, until done or `until` (monotonic); False if cut off."""
    for i in range(len(data)):
        if time.monotonic() >= until:
            return True
        try:
            sock.sendall(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError, OSError):
            return False
        time.sleep(every_s)
    return True


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """The request line and headers, CRLF-terminated."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
