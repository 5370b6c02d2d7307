"""Failed authentication, counted per client address in fixed windows: the limit and the audit summary.

After `limit` failed tries (unknown API key, wrong admin token) from one address within a window, every
request from it that needs credentials is refused with 429 and `Retry-After` until the window ends;
the key is not even looked up. The audit trail gets one row per address and window, with the counts,
when the window closes (or the process stops), instead of one row per try: a client guessing keys
as fast as it can no longer writes the audit table as fast as it can.

The counts live in this process (one API process, one set of windows); at most `max_clients`
addresses are tracked at once, the oldest window being closed early to make room.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("api_key", "admin")


@dataclass
class Window:
    """One address's failures in one window."""

    client: str
    started: float
    started_at: dt.datetime
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    throttled: int = 0

    @property
    def total(self) -> int:
        """Failed tries of every kind."""
        return sum(self.failures.values())


class AuthThrottle:
    """Thread-safe per-address windows of failed authentication (`clock` is monotonic seconds)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, Window] = {}  # insertion order: oldest window first
        self._closed: list[Window] = []

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it is not throttled (a refusal is counted)."""
        now = self._clock()
        with self._lock:
            window = self._current(client, now)
            if window is None or window.total < self.limit:
                return None
            window.throttled += 1
            return max(1, math.ceil(window.started + self.window_s - now))

    def failed(self, client: str, kind: str) -> None:
        """Count one failed try of `kind` (`api_key` or `admin`) from `client`."""
        now = self._clock()
        with self._lock:
            window = self._current(client, now)
            if window is None:
                if len(self._windows) >= self.max_clients:
                    oldest = next(iter(self._windows))
                    self._closed.append(self._windows.pop(oldest))
                window = Window(client=client, started=now, started_at=dt.datetime.now(dt.UTC))
                self._windows[client] = window
            window.failures[kind] = window.failures.get(kind, 0) + 1

    def closed(self, *, everything: bool = False) -> list[Window]:
        """Take the windows that have ended (every window, with `everything`): each is audited once."""
        now = self._clock()
        with self._lock:
            # Windows are kept in the order they started and all last as long: the first still open ends the scan.
            while self._windows:
                client, window = next(iter(self._windows.items()))
                if not everything and now < window.started + self.window_s:
                    break
                self._closed.append(self._windows.pop(client))
            out, self._closed = self._closed, []
        return out

    def restore(self, windows: list[Window]) -> None:
        """Hand back windows whose audit row could not be written, to be tried again at the next flush."""
        with self._lock:
            self._closed.extend(windows)

    def _current(self, client: str, now: float) -> Window | None:
        window = self._windows.get(client)
        if window is not None and now >= window.started + self.window_s:
            self._closed.append(self._windows.pop(client))
            return None
        return window
