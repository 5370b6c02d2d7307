"""`abstractor serve` for tests: `service.processes.embedded.serve` with settings from the environment.

    python -m tests.support.embedded_server --port 8080 --engine deterministic|stalled|real

`deterministic` injects tests.support.engines.DeterministicEngine (plumbing only); `stalled` injects one
that never answers, so a job stays running until the process is killed (the restart test); `real` leaves
the engine to `serve`, which builds the configured one lazily, exactly as the CLI command does.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence

from service.config import Settings
from service.processes.embedded import serve
from tests.support.engines import DeterministicEngine
from workers.engines.protocol import GenerationRequest, GenerationResult


class StalledEngine(DeterministicEngine):
    """Takes a job and never answers: what a process killed mid-generation leaves behind."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Block until the process dies."""
        threading.Event().wait()
        raise AssertionError("unreachable")


def main() -> None:
    """Parse the two flags and serve until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--engine", choices=["deterministic", "stalled", "real"], default="deterministic")
    args = parser.parse_args()
    engines = {"deterministic": DeterministicEngine, "stalled": StalledEngine}
    engine = engines[args.engine]() if args.engine in engines else None
    serve(args.host, args.port, Settings(), engine=engine)


if __name__ == "__main__":
    main()
