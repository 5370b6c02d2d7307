"""How the API is served: one uvicorn configuration for `abstractor serve` and `abstractor api`.

uvicorn bounds an idle keep-alive connection and the size of a request's head, but not a fresh
connection that sends nothing, nor request headers arriving a byte at a time (slowloris), and its own
refusals are plain text. `GuardedH11Protocol` adds what is missing, per connection:

- the request line and headers must be complete within `ABSTRACTOR_HTTP_HEADER_TIMEOUT_S` of the
  connection opening (or of the previous response): else 408 `request_timeout` and the connection closes;
- at most `ABSTRACTOR_HTTP_MAX_CONNECTIONS` connections are open: one more is answered 503
  `too_many_connections` and closed at once;
- a head over `ABSTRACTOR_HTTP_MAX_HEADER_BYTES` is 431 `headers_too_large`, broken HTTP 400
  `invalid_http`, both in the API's error shape.

The body's size and pace are the ASGI guard's (`service.api.guard`), the Host header too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.api.errors import error_body
from service.config import Settings


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may take of the server, from the settings."""

    header_timeout_s: float
    max_connections: int
    retry_after_s: int = 1


def raw_error(status: int, code: str, details: dict[str, Any] | None = None, retry_after_s: int | None = None) -> bytes:
    """A complete HTTP/1.1 error response in the API's shape, closing the connection (no request needed)."""
    payload = json.dumps(error_body(status, code, details)).encode("utf-8")
    phrase = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}.get(
        status, "Service Unavailable"
    )
    head = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: application/json",
        f"content-length: {len(payload)}",
        "connection: close",
    ]
    if retry_after_s is not None:
        head.append(f"retry-after: {retry_after_s}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + payload


class _Connection(h11.Connection):
    """h11's connection, refusing a request head over `max_head_bytes` even when it arrived whole (h11
    bounds only a head still incomplete), and remembering the status its last protocol error suggests."""

    error_status = 400

    def __init__(self, max_head_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_head_bytes = max_head_bytes

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                size = len(event.method) + len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self.max_head_bytes:
                    raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            return event
        except h11.RemoteProtocolError as e:
            self.error_status = e.error_status_hint
            raise


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's head and a cap on open connections."""

    limits = ConnectionLimits(header_timeout_s=10.0, max_connections=512)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        size = self.config.h11_max_incomplete_event_size
        self.conn: _Connection = _Connection(size if size is not None else 16 * 1024)  # h11's own default
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.write(raw_error(503, "too_many_connections", retry_after_s=self.limits.retry_after_s))
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # a new request's head is arriving (keep-alive: after the last response)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()

    def send_400_response(self, msg: str) -> None:
        status = 431 if self.conn.error_status == 431 else 400
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(raw_error(status, "headers_too_large" if status == 431 else "invalid_http"))
            self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            details = {"limit": "http_header_timeout_s", "max": self.limits.header_timeout_s}
            self.transport.write(raw_error(408, "request_timeout", details))
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class bound to `limits` (uvicorn builds one instance per connection)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def uvicorn_config(settings: Settings, app: Any, *, host: str, port: int) -> uvicorn.Config:
    """The one uvicorn configuration: our logging and access log, the front door's bounds from settings."""
    limits = ConnectionLimits(
        header_timeout_s=settings.http_header_timeout_s, max_connections=settings.http_max_connections
    )
    forwarded = settings.forwarded_allow_ips
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        # log_config=None keeps our JSON logging; our middleware writes the access log (with request ids).
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=settings.http_keep_alive_s,
        h11_max_incomplete_event_size=settings.http_max_header_bytes,
        # X-Forwarded-For decides the client address (and so the failed-authentication limit): believed
        # from the listed proxies only, and by default from none (uvicorn would trust 127.0.0.1).
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=forwarded or None,
        server_header=False,
    )


STARTUP_FAILURE = 3
"""uvicorn's exit status when the server never started (the port is taken, say)."""


def serve_app(settings: Settings, app: Any, *, host: str, port: int) -> None:
    """Serve `app` until interrupted, with `uvicorn_config` (what `uvicorn.run` does for one process)."""
    server = uvicorn.Server(uvicorn_config(settings, app, host=host, port=port))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
