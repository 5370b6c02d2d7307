"""`abstractor worker` for tests: `service.processes.production.run_worker`, settings from the environment, and a
deterministic engine (plumbing only, never a quality claim) that misbehaves on marked documents.

    python -m tests.workers.celery.worker_main --delay 0.1 --hostname w1@%h

Markers in a document's text (the engine sees them in the prompt's excerpt):
- KILL-MY-WORKER   the engine SIGKILLs its own process (a document that kills its worker);
- TRANSIENT-ONCE   the first call in this process raises TransientError (then it works);
- SLOW-DOC         the call sleeps for a minute (past any soft time limit the tests set).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import Sequence

from service.config import Settings
from service.processes.production import run_worker
from tests.support.engines import DeterministicEngine
from workers.engines.protocol import GenerationRequest, GenerationResult
from workers.errors import TransientError


class MarkedEngine(DeterministicEngine):
    """The deterministic engine, `delay_s` slower per call, reacting to the markers above."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.flaked: set[str] = set()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Sleep, obey the markers, then answer like the deterministic engine."""
        text = " ".join(r.messages[-1].content for r in requests)
        if "KILL-MY-WORKER" in text:
            os.kill(os.getpid(), signal.SIGKILL)
        if "SLOW-DOC" in text:
            time.sleep(60)
        if "TRANSIENT-ONCE" in text and text not in self.flaked:
            self.flaked.add(text)
            raise TransientError("engine server away", code="engine_unavailable")
        time.sleep(self.delay_s)
        return super().generate(requests)


def main() -> None:
    """Parse the flags and run the worker until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--hostname", default=None)
    parser.add_argument("--pool", choices=("prefork", "threads"), default="prefork")
    args = parser.parse_args()
    run_worker(
        Settings(),
        concurrency=args.concurrency,
        engine=lambda: MarkedEngine(args.delay),
        hostname=args.hostname,
        pool=args.pool,
    )


if __name__ == "__main__":
    main()
