"""The langextract peer: `python -m llama_cpp.server` serving the same GGUF, and langextract run in its own
virtual environment against it (`bench/langextract_runner.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from bench.peer_langextract_records import LANGEXTRACT_TASKS, record_from_extractions
from bench.peer_types import (
    LANGEXTRACT_CHAR_BUFFER,
    LANGEXTRACT_RUNNER,
    LANGEXTRACT_SETUP,
    LANGEXTRACT_VENV,
    N_CTX,
    ROOT,
    SERVED_MODEL,
    Answer,
    PeerError,
)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llama_server(model_path: Path, threads: int, log: TextIO) -> Iterator[str]:
    """`python -m llama_cpp.server` (from our .venv) serving the GGUF as `abstractor`; yields its /v1 URL."""
    port = free_port()
    # fmt: off
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path), "--model_alias", SERVED_MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", str(threads), "--n_threads_batch", str(threads),
        "--seed", "0", "--verbose", "False",
    ]
    # fmt: on
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise PeerError("server_exited")
            if time.monotonic() > deadline:
                raise PeerError("server_start_timeout")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)  # still loading the model
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class LangExtractSystem:
    """langextract from its own venv, one runner process per document, against a local llama.cpp server."""

    name = "langextract"

    def __init__(self, model_path: Path, threads: int, max_output_tokens: int, request_timeout_s: float) -> None:
        self.threads = threads
        self.max_output_tokens = max_output_tokens
        self.request_timeout_s = request_timeout_s
        subprocess.run(["bash", str(LANGEXTRACT_SETUP)], check=True, timeout=1800, stdout=subprocess.DEVNULL)
        self.python = LANGEXTRACT_VENV / "bin/python"
        self._stack = contextlib.ExitStack()
        log_path = Path(tempfile.gettempdir()) / "abstractor-peers-llama-server.log"
        log = self._stack.enter_context(log_path.open("w"))
        self.base_url = self._stack.enter_context(llama_server(model_path, threads, log))

    def extract(self, doc: Any, schema_name: str, deadline: float) -> Answer:
        """Run langextract on the document text and map its extractions onto the schema's fields."""
        prompt, examples = LANGEXTRACT_TASKS[schema_name]
        job = {
            "text": doc.text,
            "prompt_description": prompt,
            "examples": examples,
            "base_url": self.base_url,
            "model_id": SERVED_MODEL,
            "max_char_buffer": LANGEXTRACT_CHAR_BUFFER,
            "max_output_tokens": self.max_output_tokens,
            "request_timeout_s": self.request_timeout_s,
        }
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        try:
            done = subprocess.run(
                [str(self.python), str(LANGEXTRACT_RUNNER)],
                input=json.dumps(job),
                capture_output=True,  # its stderr may quote the document: never shown
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                env=env,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired as e:
            raise PeerError("timeout") from e
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise PeerError(f"runner_exit_{done.returncode}")
        reply = json.loads(lines[-1])
        if "error" in reply:
            cause = reply.get("cause")
            raise PeerError(f"{reply['error']}({cause})" if cause else reply["error"])
        record = record_from_extractions(schema_name, reply["extractions"])
        return Answer(
            record,
            reply.get("prompt_tokens"),
            reply.get("completion_tokens"),
            model_seconds=float(reply["seconds"]),
            requests=reply.get("requests"),
            cut_answers=reply.get("cut_answers"),
        )

    def close(self) -> None:
        """Stop the server."""
        self._stack.close()
