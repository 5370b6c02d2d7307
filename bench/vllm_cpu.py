"""vLLM on this machine's CPU: the environment `scripts/setup-vllm` built, and `vllm serve` started from it.

Tests and benchmarks use the same launcher, with the release's own server flags
(`workers.engines.vllm_release.server_flags`), so what they measure is what deployments run. On a GPU
host the benchmarks take the URL of a running `vllm serve` instead and never start one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from workers.engines.vllm_release import DEFAULT_BACKEND, SERVED_MODEL_NAME, server_flags

REPO = Path(__file__).resolve().parents[1]
ENV_FILE = REPO / ".tools" / "vllm-env.json"
START_TIMEOUT_S = 900.0
"""A cold start here takes about a minute; the bound only stops a wedged server from hanging a run."""


@dataclass(frozen=True)
class VllmCpuEnv:
    """Where setup-vllm put the vLLM environment and the HF copy of the embedded model."""

    python: Path
    model: Path
    version: str

    def child_env(self, threads: int | None = None) -> dict[str, str]:
        """Environment of a process running vLLM here: offline, quiet about usage, every core for torch."""
        available = sorted(os.sched_getaffinity(0))
        cores = available[: threads or len(available)]
        return {
            **os.environ,
            # vLLM halves torch's threads "for serving" unless told; a worker machine gives it every core.
            "OMP_NUM_THREADS": str(len(cores)),
            # And its CPU worker binds its threads to all cores but one, kept for the scheduler process
            # ("auto"), which on a 2-core machine halves the model's speed. Every available core instead:
            # 50.6 against 28.2 generated tokens/s with 8 requests in flight, 18.7 against 13.3 for one
            # (16 completions of 64 tokens, both servers one after another on a 2-core AMD EPYC with
            # AVX-512, 2026-12-05). The scheduler mostly waits on the worker.
            "VLLM_CPU_OMP_THREADS_BIND": ",".join(str(c) for c in cores),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONPATH": str(REPO),
        }


def load_env(path: Path = ENV_FILE) -> VllmCpuEnv | None:
    """The environment setup-vllm recorded, or None when it has not run (or its files are gone)."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    env = VllmCpuEnv(python=Path(data["python"]), model=Path(data["model"]), version=str(data["version"]))
    if not env.python.is_file() or not (env.model / "config.json").is_file():
        return None
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class VllmServer:
    """`vllm serve` (its module form: the CPU distribution is named vllm-cpu) on a free loopback port."""

    def __init__(
        self,
        env: VllmCpuEnv,
        *,
        backend: str = DEFAULT_BACKEND,
        max_model_len: int = 4096,
        kv_cache_gib: float = 2.0,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.env = env
        self.port = _free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/v1"
        self.log_path = log_path
        # fmt: off
        self.command = [
            str(env.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(env.model), "--served-model-name", SERVED_MODEL_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(max_model_len),
            f"--kv-cache-memory-bytes={int(kv_cache_gib * (1 << 30))}",
            # No graph capture or compilation on CPU: a start in about a minute instead of several.
            "--enforce-eager",
            *server_flags(backend),
            *extra_args,
        ]
        # fmt: on
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> VllmServer:
        self._log = self.log_path.open("wb") if self.log_path is not None else None
        out: Any = self._log if self._log is not None else subprocess.DEVNULL
        # Its own process group: the engine core and its workers go down with it, whatever happens.
        self.proc = subprocess.Popen(
            self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env.child_env(), start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.proc.returncode}; {self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass  # still loading
            time.sleep(0.5)
        self.__exit__()
        raise TimeoutError(f"vllm serve did not come up in {START_TIMEOUT_S:g} s; {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages (engine logs hold no prompts)."""
        if self.log_path is None or not self.log_path.is_file():
            return "no log kept"
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "log tail:\n" + "\n".join(tail)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # any engine process left behind
        if self._log is not None:
            self._log.close()
