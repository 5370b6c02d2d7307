"""The front door's checks before any route runs: the Host header, the body's size, the body's pace.

- Host: only the names in `ABSTRACTOR_ALLOWED_HOSTS` are served (400 `invalid_host` otherwise), so a
  DNS-rebinding page cannot talk to a developer's server and no response is built from a forged Host.
- Size: a body that is not an upload (JSON, or anything sent to a JSON route) is read here, at most
  `ABSTRACTOR_MAX_JSON_BODY_BYTES` of it, before the app parses a byte: a larger Content-Length is
  refused unread, a chunked body as soon as it passes the limit (413 `too_large`). Uploads stream
  through `service.api.uploads`, which bounds them itself.
- Pace: the whole body must arrive within `ABSTRACTOR_HTTP_BODY_TIMEOUT_S`, with no pause longer than
  `ABSTRACTOR_HTTP_BODY_IDLE_TIMEOUT_S` (408 `request_timeout`). The request line and headers are
  bounded one level down, in the HTTP protocol itself (`service.api.server`).

Refusals carry `Connection: close`: the rest of a refused body is not read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import ApiError, error_body

UPLOAD_ROUTES = frozenset({("POST", "/v1/documents")})
"""Routes whose body streams to `service.api.uploads.spool_upload` (bounded there by the document limit)."""


class RequestTimeoutError(ApiError):
    """The request body did not arrive in time."""

    status_code = 408
    code = "request_timeout"


def _timeout(limit: str, seconds: float) -> RequestTimeoutError:
    return RequestTimeoutError(
        "the request body did not arrive in time",
        details={"limit": limit, "max": seconds},
        headers={"Connection": "close"},
    )


@dataclass(frozen=True)
class HostRule:
    """Allowed Host values: exact names or addresses, `*.suffix` for any subdomain, a CIDR for the
    addresses in it (a pod network scraped by address), `*` for anything."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    any_host: bool
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> HostRule:
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        any_host = False
        for entry in entries:
            value = entry.strip().lower().rstrip(".")
            if value == "*":
                any_host = True
            elif value.startswith("*."):
                suffixes.append(value[1:])
            elif "/" in value:
                networks.append(ipaddress.ip_network(value, strict=False))
            elif value:
                names.add(value.strip("[]"))
        return cls(frozenset(names), tuple(suffixes), any_host, tuple(networks))

    def _in_networks(self, host: str) -> bool:
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def allows(self, host_header: str | None) -> bool:
        """Whether a Host header value (port and IPv6 brackets allowed) names a host we serve."""
        if self.any_host:
            return True
        if not host_header:
            return False
        host = host_header.strip().lower()
        if host.startswith("["):  # [v6]:port
            host = host[1 : host.find("]")] if "]" in host else ""
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        host = host.rstrip(".")
        if not host:
            return False
        return host in self.names or any(host.endswith(s) for s in self.suffixes) or self._in_networks(host)


async def send_error(send: Send, status: int, code: str, details: dict[str, object] | None = None) -> None:
    """An error response in the one shape, closing the connection (nothing more of the request is read)."""
    payload = json.dumps(error_body(status, code, details)).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _BodyTooLarge(Exception):
    pass


class HttpGuard:
    """Pure ASGI middleware: Host check, bounded and timed request bodies (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Collection[str],
        max_body_bytes: int,
        body_timeout_s: float,
        body_idle_timeout_s: float,
        upload_routes: Collection[tuple[str, str]] = UPLOAD_ROUTES,
    ) -> None:
        self.app = app
        self.hosts = HostRule.parse(allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.idle_timeout_s = body_idle_timeout_s
        self.upload_routes = frozenset(upload_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = headers.get(b"host")
        if not self.hosts.allows(host.decode("latin-1") if host is not None else None):
            await send_error(send, 400, "invalid_host")
            return
        timed = self._timed(receive)
        if (scope.get("method"), scope.get("path")) in self.upload_routes:
            await self.app(scope, timed, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, "too_large", self._limit_details())
            return
        try:
            body = await self._read_body(timed)
        except _BodyTooLarge:
            await send_error(send, 413, "too_large", self._limit_details())
            return
        except RequestTimeoutError as e:
            await send_error(send, e.status_code, e.code, e.details)
            return
        if body is None:  # the client left before the body was complete: nobody to answer
            return
        await self.app(scope, _replay(body, receive), send)

    def _limit_details(self) -> dict[str, object]:
        return {"limit": "max_json_body_bytes", "max": self.max_body_bytes}

    def _timed(self, receive: Receive) -> Receive:
        """`receive` under the body's deadline and idle limit (raising `RequestTimeoutError`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        done = False

        async def timed_receive() -> Message:
            nonlocal done
            if done:  # the body is in: from here on `receive` only waits for a disconnect
                return await receive()
            left = deadline - loop.time()
            if left <= 0:
                raise _timeout("http_body_timeout_s", self.body_timeout_s)
            wait = min(left, self.idle_timeout_s)
            try:
                message = await asyncio.wait_for(receive(), wait)
            except TimeoutError:
                if wait < self.idle_timeout_s:
                    raise _timeout("http_body_timeout_s", self.body_timeout_s) from None
                raise _timeout("http_body_idle_timeout_s", self.idle_timeout_s) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        return timed_receive

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, once; then the real `receive` (which reports the client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
