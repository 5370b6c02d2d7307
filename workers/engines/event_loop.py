"""One asyncio loop in a daemon thread, shared by every thread of a worker that calls an engine.

A worker runs many jobs at once (a thread each); their requests must share one HTTP connection pool
(or one vLLM engine) and one bound on requests in flight, which only works if they all run on the
same event loop. Callers in any thread hand a coroutine to `run` and block for its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """An event loop running forever in its own daemon thread until `close`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and wait for it; a timeout cancels it there and raises TimeoutError."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("BackgroundLoop.run called from its own loop thread (it would deadlock)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout} s") from None

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the loop thread (objects bound to the loop are built there)."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper())

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop and its thread (pending work is dropped)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
