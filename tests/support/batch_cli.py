"""`abstractor batch` for tests: the CLI's own `run_cli_batch`, with the deterministic engine injected.

    python -m tests.support.batch_cli SOURCE --schema nda [--out DIR] [--delay-s 0.2] [--follow-symlinks]

Settings come from the environment (ABSTRACTOR_DATABASE_URL, ...), exactly as for the real command;
only the engine differs (the real model takes 30-60 s a document on 2 cores). `--delay-s` makes each
generation take at least that long, so a test can interrupt the batch part-way.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import typer

from service.cli import run_cli_batch
from tests.support.engines import DeterministicEngine
from workers.engines.protocol import GenerationRequest, GenerationResult


class SlowDeterministicEngine(DeterministicEngine):
    """The deterministic engine, waiting `delay_s` per call (a stand-in for a model's latency)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Wait, then answer as the deterministic engine does."""
        time.sleep(self.delay_s)
        return super().generate(requests)


def main() -> None:
    """Parse the batch command's options and run it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tenant", default="local")
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--follow-symlinks", action="store_true")
    args = parser.parse_args()
    # A test stands in for a person pressing Ctrl-C at a terminal. A suite started in the background (`nohup`,
    # `cmd &` in a script) hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt;
    # an interactive launch has Python's default handler, so this restores it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    engine = SlowDeterministicEngine(args.delay_s) if args.delay_s > 0 else DeterministicEngine()
    try:
        run_cli_batch(
            args.source,
            args.schema,
            out=args.out,
            tenant=args.tenant,
            engine=engine,
            follow_symlinks=args.follow_symlinks,
        )
    except typer.Exit as e:  # outside a typer app, its exit has to become the process's own
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
