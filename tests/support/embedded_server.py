"""`abstractor serve` for tests: `service.processes.embedded.serve` with settings from the environment.

    python -m tests.support.embedded_server --port 8080 --engine deterministic|real

`deterministic` injects tests.support.engines.DeterministicEngine (plumbing only); `real` leaves the
engine to `serve`, which builds the configured one lazily, exactly as the CLI command does.
"""

from __future__ import annotations

import argparse

from service.config import Settings
from service.processes.embedded import serve
from tests.support.engines import DeterministicEngine


def main() -> None:
    """Parse the two flags and serve until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--engine", choices=["deterministic", "real"], default="deterministic")
    args = parser.parse_args()
    engine = DeterministicEngine() if args.engine == "deterministic" else None
    serve(args.host, args.port, Settings(), engine=engine)


if __name__ == "__main__":
    main()
