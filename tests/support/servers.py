"""Real HTTP servers on loopback for tests: uvicorn in a thread, or `serve` in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_up(base_url: str, timeout: float = 60.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Poll /healthz until it answers 200 (or fail, showing why the child died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if _answers(f"{base_url}/healthz"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} did not come up in {timeout} s")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False  # not listening yet


class ThreadedServer:
    """uvicorn serving an ASGI app on 127.0.0.1 in a thread, with lifespan, stopped cleanly.

    With `settings`, uvicorn is configured as `abstractor serve` and `abstractor api` configure it
    (`service.api.server.uvicorn_config`: the front door's timeouts, limits and proxy rules).
    """

    def __init__(self, app: Any, port: int | None = None, *, settings: Any = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        if settings is not None:
            from service.api.server import uvicorn_config

            config = uvicorn_config(settings, app, host="127.0.0.1", port=self.port)
        else:
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on"
            )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_until_up(self.base_url, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_env(data_dir: Path, admin_token: str) -> dict[str, str]:
    """The environment of a development `serve` keeping everything (SQLite store included) in `data_dir`."""
    return {
        "ABSTRACTOR_DATABASE_URL": f"sqlite:///{data_dir / 'abstractor.db'}",
        "ABSTRACTOR_DATA_DIR": str(data_dir),
        "ABSTRACTOR_ADMIN_TOKEN": admin_token,
        "ABSTRACTOR_ENVIRONMENT": "development",
        "ABSTRACTOR_LOG_LEVEL": "INFO",
    }


class ServeProcess:
    """`python -m tests.support.embedded_server` (our `serve`) in a child process with its own env."""

    def __init__(self, env: dict[str, str], engine: str = "deterministic", log_path: Path | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.engine = engine
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        out = self.log_path.open("wb") if self.log_path is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.embedded_server", "--port", str(self.port), "--engine", self.engine],
            cwd=REPO,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        wait_until_up(self.base_url, timeout=120, proc=self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()  # SIGTERM: uvicorn shuts down gracefully, stopping the worker
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
