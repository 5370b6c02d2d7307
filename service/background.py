"""A daemon thread that polls for work: the shape shared by the embedded worker and the webhook deliverer."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class PollingThread:
    """Calls `run_once` until stopped; sleeps `poll_s` (or until woken) whenever it found nothing to do.

    The thread outlives errors of one iteration (a store outage, say): it logs the exception's type only,
    since a message may quote document content, and tries again after the poll interval.
    """

    thread_name = "abstractor-background"

    def __init__(self, *, poll_s: float = 1.0) -> None:
        self._poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool | int:
        """Do one unit of work; falsy when there was nothing to do."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop after its current unit of work and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look for work now."""
        self._wake.set()

    def alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception as e:  # noqa: BLE001 - the thread must outlive a store outage
                log.error(
                    "background iteration failed", extra={"thread": self.thread_name, "exc_type": type(e).__name__}
                )
                worked = False
            if not worked:
                self._wake.wait(self._poll_s)
                self._wake.clear()
