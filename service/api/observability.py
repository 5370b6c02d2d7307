"""Request ids, structured logs and Prometheus metrics for the API and the embedded worker.

Log records get `request_id` / `job_id` from context variables, so every line a request or a job
causes can be joined up without passing ids around. Loggers that would print SQL parameters, rows
or multipart payloads (SQLAlchemy at DEBUG prints document bytes and extracted values) are pinned to
WARNING whatever the root level is.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import classify, error_body
from service.logs import configure_logging

log = logging.getLogger("service.api.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

# Their DEBUG output quotes SQL parameters and rows, or request/response payloads.
CONTENT_LOGGERS = ("sqlalchemy", "multipart", "python_multipart", "httpcore", "httpx", "hpack", "hypothesis")


class ContextFilter(logging.Filter):
    """Stamp `request_id` / `job_id` (when set and not given explicitly) on each record a handler emits.

    A filter rather than a record factory: `extra={"job_id": ...}` must keep working, and the logging
    module refuses `extra` keys that the factory has already set.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the ids; never drops a record."""
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        job_id = job_id_var.get()
        if job_id is not None and not hasattr(record, "job_id"):
            record.job_id = job_id
        return True


def install_log_context(handlers: list[logging.Handler] | None = None) -> None:
    """Add the `ContextFilter` to `handlers` (default: the root logger's), once each."""
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())


def quiet_content_loggers() -> None:
    """Pin loggers whose verbose output would carry content to WARNING."""
    for name in CONTENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_api_logging(level: str = "INFO") -> None:
    """JSON logs on stderr (service.logs) with ids stamped and content-bearing loggers quietened."""
    configure_logging(level)
    install_log_context()
    quiet_content_loggers()


def clean_request_id(value: str | None) -> str:
    """The caller's X-Request-ID when it is a short token, else a fresh one (it goes into audit rows)."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class Metrics:
    """One registry per app, so several apps (tests) never clash on metric names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "abstractor_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "abstractor_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "abstractor_upload_bytes_read",
            "Request-body bytes the upload reader consumed (refused uploads included).",
            registry=self.registry,
        )
        self.uploads_refused = Counter(
            "abstractor_uploads_refused", "Uploads refused, by error code.", ["code"], registry=self.registry
        )
        self.jobs_finished = Counter(
            "abstractor_jobs_finished",
            "Jobs the in-process worker finished, by final status.",
            ["status"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "abstractor_job_duration_seconds",
            "Wall time of one job run by the in-process worker, by final status.",
            ["status"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )

    def watch_job_counts(self, counts: Callable[[], Mapping[str, int] | None]) -> None:
        """Export `abstractor_jobs{status}` from `counts()` at scrape time (None: the store is down)."""
        self.registry.register(_JobCounts(counts))


class _JobCounts(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int] | None]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("abstractor_jobs", "Jobs in the store by status.", labels=["status"])
        counts = self._counts()
        if counts is not None:
            for status, n in sorted(counts.items()):
                gauge.add_metric([status], n)
        yield gauge

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Describing without collecting keeps registration from querying the store.
        yield GaugeMetricFamily("abstractor_jobs", "Jobs in the store by status.", labels=["status"])


class RequestContextMiddleware:
    """Pure ASGI: request id in and out, one access log line, metrics, and the last-resort 500.

    It sits inside Starlette's ServerErrorMiddleware, so an unexpected exception still gets the error
    model, the request id header and a metric, and its text never reaches the client or the log.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = clean_request_id(headers.get(REQUEST_ID_HEADER.lower()))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                raw.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": raw}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            status, code, _message, details = classify(exc)
            log.error("unhandled error", extra={"error_code": code, "exc_type": type(exc).__name__})
            if response_started:
                raise
            await _send_json(send_wrapper, status, error_body(status, code, details))
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )
            request_id_var.reset(token)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

    payload = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
