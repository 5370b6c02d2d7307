"""Client for an OpenAI-compatible server (production: `vllm serve`), with many requests in flight.

vLLM batches continuously: the GPU is full only when many requests wait at once. So one `generate`
call sends every chunk of its document together, and a worker running many jobs at once (one thread
each) shares one engine: every call runs on the engine's own event loop (`BackgroundLoop`), through one
HTTP connection pool, under one bound of `concurrency` requests in flight for the whole process.

Failure policy (the pipeline never sees a partial answer):
- HTTP 5xx, 408, 429, timeouts and connection errors are retried with exponential backoff; when the
  retries are spent the whole call raises `TransientError` (the queue may retry the job) and the
  requests still in flight are cancelled. Worst case one call lasts about
  `(max_retries + 1) * timeout_s + backoff_s * (2 ** max_retries - 1)` seconds.
- Other 4xx are not retried: 401/403/404 raise `ConfigError` (wrong key, URL or model name), the rest
  `BadInputError` (the server refused this request, e.g. a prompt over its context window).
- `finish_reason == "length"` comes back as a "length" result with no text: the JSON is truncated.

Server errors may echo request fields, so error messages keep only the server's first line, cut
before any `input_value=` part, and never the prompt.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from workers.engines.event_loop import BackgroundLoop
from workers.engines.openai_wire import (
    ResponseFormatStyle,
    chat_payload,
    error_detail,
    parse_completion,
)
from workers.engines.protocol import EngineInfo, GenerationRequest, GenerationResult
from workers.errors import BadInputError, ConfigError, TransientError, WorkerError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429})
"""Besides every 5xx: the server timed out or shed load, so the same request may succeed later."""

CONFIG_STATUS = frozenset({401, 403, 404})
"""Wrong API key, base URL or served model name: retrying cannot help, the deployment must change."""

_MAX_BACKOFF_S = 30.0
TokenizeMode = Literal["vllm", "llamacpp", "estimate"]


def _root_url(base_url: str) -> str:
    """The server root: vLLM serves /tokenize there and llama.cpp /extras, beside the /v1 API."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


class OpenAICompatEngine:
    """An OpenAI-compatible chat-completions server behind the engine protocol (no model in this process)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str = "abstractor",
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        default_context_tokens: int = 4096,
        disable_any_whitespace: bool = True,
        response_format_style: ResponseFormatStyle = "json_schema",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"OpenAI base URL must be http(s)://..., got {base_url!r}", code="engine_config")
        if response_format_style not in ("json_schema", "json_object"):
            raise ConfigError(f"unknown response_format style {response_format_style!r}", code="engine_config")
        if concurrency < 1 or timeout_s <= 0 or max_retries < 0:
            raise ConfigError("engine needs concurrency >= 1, timeout > 0 and retries >= 0", code="engine_config")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.disable_any_whitespace = disable_any_whitespace
        self.response_format_style: ResponseFormatStyle = response_format_style
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._default_context_tokens = default_context_tokens
        self._context_tokens: int | None = None
        self._tokenize_mode: TokenizeMode | None = None
        self.in_flight = 0
        self.peak_in_flight = 0
        """Most requests this engine had open at once (over all threads) since `reset_peak`."""
        self._loop: BackgroundLoop | None = None
        self._loop_lock = threading.Lock()
        self._http: httpx.AsyncClient | None = None
        self._gate: asyncio.Semaphore | None = None
        self.info = EngineInfo(
            engine="openai",
            model=model,
            model_sha256=None,
            grammar_backend="server",
            extra={"base_url": self.base_url, "concurrency": concurrency, "response_format": response_format_style},
        )

    # -- the shared loop, client and bound -----------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        """Run `coro` on this engine's loop (started on first use) and wait for it, from any thread."""
        with self._loop_lock:
            if self._loop is None:
                self._loop = BackgroundLoop(f"openai-engine-{id(self):x}")
                self._loop.call(self._open)
            loop = self._loop
        return loop.run(coro)

    def _open(self) -> None:
        # Built on the loop's thread: the client's pool and the semaphore belong to that loop.
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        timeout = httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))
        self._http = httpx.AsyncClient(headers=self._headers, limits=limits, timeout=timeout)
        self._gate = asyncio.Semaphore(self.concurrency)

    def close(self) -> None:
        """Close the connection pool and stop the loop (the engine may not be used afterwards)."""
        with self._loop_lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._http is not None:
            loop.run(self._http.aclose())
        loop.close()

    def reset_peak(self) -> None:
        """Start counting the peak of requests in flight again (benchmarks and tests read it)."""
        self.peak_in_flight = self.in_flight

    def _client(self) -> httpx.AsyncClient:
        assert self._http is not None, "the client is opened on the loop before any call"
        return self._http

    # -- HTTP with retries -------------------------------------------------------------------------

    async def _call(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        payload: dict[str, Any] | None = None,
        *,
        request_id: str = "",
        missing_ok: bool = False,
    ) -> Any:
        """The JSON body of a successful call, retrying passing faults; `None` for 404/405 when `missing_ok`.

        `request_id` only labels our logs: sent as X-Request-Id it would be refused by servers that want a
        UUID there (llama-cpp-python answers 400), and vLLM needs ids unique across all clients.
        """
        delay = self.backoff_s
        last = ""
        statuses: list[int] = []
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                async with asyncio.timeout(self.timeout_s):
                    response = await client.request(method, url, json=payload)
            except (TimeoutError, httpx.TimeoutException):
                last = f"no answer within {self.timeout_s:g} s"
            except httpx.TransportError as e:
                last = f"{type(e).__name__} connecting to the server"
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json()
                    except ValueError:
                        last = f"HTTP {status} with a body that is not JSON"
                elif missing_ok and status in (404, 405):
                    return None
                elif status >= 500 or status in RETRY_STATUS:
                    last = f"HTTP {status}: {error_detail(response)}"
                    statuses.append(status)
                    retry_after = _retry_after(response)
                elif status in CONFIG_STATUS:
                    raise ConfigError(
                        f"engine server refused {method} {url} (HTTP {status}): {error_detail(response)}",
                        code="engine_config",
                        details={"status": status},
                    )
                else:
                    raise BadInputError(
                        f"engine server rejected the request (HTTP {status}): {error_detail(response)}",
                        code="engine_rejected",
                        details={"status": status},
                    )
            if attempt < self.max_retries:
                log.warning(
                    "engine call failed, retrying",
                    extra={"url": url, "attempt": attempt + 1, "error": last, "request_id": request_id},
                )
                await asyncio.sleep(min(max(delay, retry_after or 0.0), _MAX_BACKOFF_S))
                delay *= 2
        if statuses == [500] * (self.max_retries + 1) and await self._healthy(client):
            # The server is up and answers its health check, yet fails this very request every time:
            # it cannot run it (vLLM answers 500 when its grammar backend crashes compiling a schema).
            # Retrying the job would only repeat that, so the job fails now, with a clear code.
            raise BadInputError(
                f"engine server is healthy but failed this request {len(statuses)} times (HTTP 500); its "
                "grammar backend may be unable to compile the schema",
                code="engine_request_failed",
                details={"attempts": len(statuses)},
            )
        raise TransientError(
            f"engine server at {self.base_url} failed {self.max_retries + 1} times: {last}",
            code="engine_unavailable",
            details={"attempts": self.max_retries + 1, "last_error": last},
        )

    async def _healthy(self, client: httpx.AsyncClient) -> bool:
        """Whether the server answers its health check (vLLM's and llama.cpp's `/health`) with 200."""
        try:
            async with asyncio.timeout(min(10.0, self.timeout_s)):
                response = await client.get(f"{_root_url(self.base_url)}/health")
        except (TimeoutError, httpx.HTTPError):
            return False
        return response.status_code == 200

    # -- generation --------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Send all requests at once (within the engine-wide bound); results come back in request order.

        Safe to call from many threads at once: their requests share the bound and the connections.
        """
        if not requests:
            return []
        results: list[GenerationResult] = self._run(self._generate_all(list(requests)))
        return results

    async def _generate_all(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        url = f"{self.base_url}/chat/completions"
        client = self._client()
        gate = self._gate
        assert gate is not None

        async def one(request: GenerationRequest) -> GenerationResult:
            payload = chat_payload(
                request,
                self.model,
                disable_any_whitespace=self.disable_any_whitespace,
                style=self.response_format_style,
            )
            async with gate:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                started = time.perf_counter()
                try:
                    body = await self._call(client, "POST", url, payload, request_id=request.request_id)
                finally:
                    self.in_flight -= 1
                return parse_completion(body, time.perf_counter() - started)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(r)) for r in requests]
        except BaseExceptionGroup as eg:
            # One request failed for good: the others were cancelled, the caller gets the first cause.
            raise _first_worker_error(eg) from eg
        return [t.result() for t in tasks]

    # -- tokens and context ------------------------------------------------------------------------

    @property
    def context_tokens(self) -> int:
        """The served model's context window (`max_model_len` from /v1/models), else the configured one."""
        if self._context_tokens is None:
            self._context_tokens = int(self._run(self._discover_context()))
        return self._context_tokens

    async def _discover_context(self) -> int:
        body = await self._call(self._client(), "GET", f"{self.base_url}/models")
        served = [m for m in (body.get("data") or []) if isinstance(m, dict)] if isinstance(body, dict) else []
        ids = [str(m.get("id")) for m in served]
        if served and self.model not in ids:
            raise ConfigError(
                f"engine server does not serve model {self.model!r} (it serves {ids}); set ABSTRACTOR_OPENAI_MODEL",
                code="engine_config",
            )
        card = next((m for m in served if m.get("id") == self.model), {})
        length = card.get("max_model_len")
        return int(length) if isinstance(length, int) and length > 0 else self._default_context_tokens

    def count_tokens(self, text: str) -> int:
        """Exact count from the server's tokenizer (vLLM /tokenize or llama.cpp /extras/tokenize/count)."""
        return int(self._run(self._count_tokens(text)))

    async def _count_tokens(self, text: str) -> int:
        root = _root_url(self.base_url)
        client = self._client()
        if self._tokenize_mode in (None, "vllm"):
            payload = {"model": self.model, "prompt": text, "add_special_tokens": False}
            body = await self._call(client, "POST", f"{root}/tokenize", payload, missing_ok=True)
            if body is not None:
                self._tokenize_mode = "vllm"
                return int(body["count"])
        if self._tokenize_mode in (None, "llamacpp"):
            body = await self._call(client, "POST", f"{root}/extras/tokenize/count", {"input": text}, missing_ok=True)
            if body is not None:
                self._tokenize_mode = "llamacpp"
                return int(body["count"])
        if self._tokenize_mode is None:
            log.warning("engine server has no tokenize endpoint; estimating 3 characters per token")
            self._tokenize_mode = "estimate"
        return len(text) // 3 + 1  # conservative for English: real tokenizers average about 4


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _first_worker_error(group: BaseExceptionGroup) -> BaseException:
    """The first WorkerError in a (nested) exception group, else the first exception itself."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            exc = _first_worker_error(exc)
        if isinstance(exc, WorkerError):
            return exc
    return group.exceptions[0]
