"""A sandbox child that fails on request, to test how the parent reads each way a child can end.

Run as `python -m tests.workers.documents.misbehaving_child` by `run_in_child`.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from typing import Any

from workers.documents.sandbox import child_main, error_result


def misbehave(payload: dict[str, Any]) -> dict[str, Any]:
    """Do what `payload["how"]` says; only "ok" and "report" return normally."""
    how = payload["how"]
    if how == "ok":
        return {"ok": {"echo": payload["echo"]}}
    if how == "report":
        return error_result("invalid_pdf", exception="Demo")
    if how == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if how == "exit":
        sys.exit(3)
    if how == "no_result":
        os._exit(0)
    if how == "hog_memory":
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
    if how == "sleep":
        time.sleep(60)
    if how == "spin":
        # Lower our own CPU limit (always allowed) so the rlimit fires before the parent's clock.
        resource.setrlimit(resource.RLIMIT_CPU, (1, 2))
        while True:
            pass
    if how == "write_too_much":
        return {"ok": {"blob": "x" * (4 * 1024 * 1024)}}
    if how == "fork_and_sleep":
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        time.sleep(60)
    raise ValueError(f"unknown misbehaviour: {how}")


if __name__ == "__main__":
    child_main(misbehave)
