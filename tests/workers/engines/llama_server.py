"""Real HTTP servers for the OpenAI-compatible engine's tests.

- `LlamaServer`: llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`) over
  the embedded GGUF, in a child process on a free loopback port. It enforces `response_format`
  json_schema with llama.cpp's GBNF grammar (slow, ~2.6 tok/s here), so tests keep budgets small.
- `FaultyServer`: a stdlib HTTP server in a thread that answers chat completions the way a broken or
  overloaded server does (500s, hangs, 4xx, slow answers), counting requests and concurrency.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port
from workers.engines.llamacpp import available_cores

SERVED_MODEL = "abstractor"


class LlamaServer:
    """`python -m llama_cpp.server` serving `model_path` as `abstractor`; stopped on exit."""

    def __init__(self, model_path: Path, *, n_ctx: int = 2048, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/v1"
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        threads = str(available_cores())
        out = self.log_path.open("wb") if self.log_path is not None else subprocess.DEVNULL
        # fmt: off
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--model_alias", SERVED_MODEL,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", threads, "--n_threads_batch", threads,
            "--seed", "0", "--verbose", "False",
        ]
        # fmt: on
        self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass  # still loading the model
            time.sleep(0.2)
        self.__exit__()
        raise TimeoutError("llama_cpp.server did not come up in 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def completion_body(content: str | None, finish_reason: str = "stop", completion_tokens: int = 3) -> dict[str, Any]:
    """A chat-completions response as an OpenAI-compatible server sends it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": SERVED_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": completion_tokens, "total_tokens": 10 + completion_tokens},
    }


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of connections (one engine sending a whole
    # wave of requests at once) would overflow it, and the kernel would delay the extra connects.
    request_queue_size = 128


Behaviour = Callable[["FaultyServer", dict[str, Any], int], tuple[int, Any, float]]
"""(server, request body, 1-based request number) -> (status, JSON body, seconds to wait before answering)."""


@dataclass
class FaultyServer:
    """A loopback HTTP server whose /v1/chat/completions answers as `behaviour` says."""

    behaviour: Behaviour
    hits: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # keep pytest output clean

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.hits += 1
                    number = outer.hits
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                    outer.bodies.append(body)
                try:
                    status, answer, wait_s = outer.behaviour(outer, body, number)
                    # Sleep in small steps so the server can stop promptly at teardown.
                    until = time.monotonic() + wait_s
                    while time.monotonic() < until and not outer._stop.is_set():
                        time.sleep(0.01)
                    data = json.dumps(answer).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout or cancellation): exactly what some tests provoke
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="faulty-server", daemon=True)

    def __enter__(self) -> FaultyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
