"""Run a function on untrusted input in a fresh, resource-limited child process, so the input can only kill the child.

The house's one way to do it: documents (`workers/documents/sandbox.py`, pypdf and OCR) and schema
admission (`service/jobs/admission.py`, meta-validation, grammar compilation and the prompt) both call
`run_in_child` and say in their own words what each ending means.

Parent side: `run_in_child` starts `python -m <module>` in its own session, sends the request on
stdin (so a password never shows in `ps`), enforces the wall-clock limit, reaps the child and turns
how it ended into a result, a `ChildReported` (the handler's own error) or a `ChildFailed` (timeout,
CPU, memory, output or crash). Child side: `child_main` sets the rlimits before the handler's third
parties are even imported, runs the handler and writes its JSON result to a file. The child's stdout
and stderr go nowhere: what a third party prints may quote its input.

Result protocol: the handler returns `{"ok": {...}}` or `{"error": {"code", "message"?, "details"?}}`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

# Exit statuses of a child that ran out of memory, or past its output limit, before it could report.
EXIT_OUT_OF_MEMORY: Final = 86
EXIT_OUTPUT_TOO_LARGE: Final = 87
# A child killed by a crash signal while this close to its memory limit most likely died of it
# (a failed malloc in C code, Rust's abort on a failed allocation, or the kernel's OOM killer): out of
# memory, not broken. Resident or virtual: the limit (RLIMIT_AS) is on the address space.
_NEAR_MEMORY_LIMIT: Final = 0.8
_MEMORY_SIGNALS: Final = frozenset({signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT})
# The project root, so `python -m workers...` finds our package whatever the caller's cwd is.
_PACKAGE_ROOT: Final = Path(__file__).resolve().parents[1]

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ChildLimits:
    """What one child may use: wall clock (enforced here), memory, CPU and output size (rlimits)."""

    timeout_s: float
    memory_mb: int
    output_bytes: int
    # Threads the child may keep busy at once (OCR runs its models on several): CPU time adds up per thread.
    threads: int = 1

    @property
    def cpu_s(self) -> int:
        """CPU seconds: just above the wall limit per thread, a backstop should the parent itself stall."""
        return math.ceil(self.timeout_s * max(self.threads, 1)) + 1


@dataclass(frozen=True)
class ChildRun:
    """A child that finished and reported success, with what it cost."""

    payload: dict[str, Any]
    peak_rss_mb: float
    cpu_s: float
    wall_s: float


class ChildFailed(Exception):
    """A child that ended without a report of its own.

    `reason`: `timeout` (wall clock), `cpu` (CPU limit), `memory`, `output` (file size limit) or
    `crashed`; `details` are our words only: the limit (`limit`, `max`), the signal or exit code, and
    the child's peak memory and CPU time.
    """

    def __init__(self, reason: str, details: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class ChildReported(Exception):
    """The handler's own error, in the result protocol; `details` include the child's cost."""

    def __init__(self, code: Any, message: str | None, details: dict[str, Any]) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.details = details


def run_in_child(module: str, payload: dict[str, Any], *, limits: ChildLimits, workdir: Path) -> ChildRun:
    """Run `module`'s `child_main` on `payload` in a fresh interpreter; raise `ChildFailed` or `ChildReported`.

    `workdir` must be a private directory the caller removes afterwards; the result file goes there.
    """
    result_path = workdir / "result.json"
    request = {
        "payload": payload,
        "result_path": str(result_path),
        "limits": {"memory_mb": limits.memory_mb, "cpu_s": limits.cpu_s, "output_bytes": limits.output_bytes},
    }
    search_path = [str(_PACKAGE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(search_path))
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-B", "-s", "-m", module],
        stdin=subprocess.PIPE,
        # The third party's own chatter may quote its input: it must not reach our logs.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
        env=env,
        start_new_session=True,
    )
    # A spawned child's ru_maxrss starts at the parent's RSS (Linux carries the high-water mark over
    # exec), so it is the child's own only when above ours; sampling /proc while it runs covers the rest.
    parent_maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sampled_kb: list[int] = [0, 0]  # the child's own peak resident and virtual sizes, sampled
    try:
        _send_request(proc, request)
        exited = _wait_for_exit(proc.pid, deadline=started + limits.timeout_s, high_water_kb=sampled_kb)
    finally:
        # Kill the whole session before reaping: the zombie leader keeps its process-group id from
        # being reused, so this can only reach the child and anything it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        status, usage = _reap(proc)
    wall_s = time.monotonic() - started
    reaped_kb = usage.ru_maxrss if usage and usage.ru_maxrss > parent_maxrss_kb else 0
    peak_rss_mb = max(sampled_kb[0], reaped_kb) / 1024  # Linux reports kilobytes
    stats = {
        "child_peak_rss_mb": round(peak_rss_mb, 1),
        "child_peak_vm_mb": round(sampled_kb[1] / 1024, 1),
        "child_cpu_s": round(usage.ru_utime + usage.ru_stime, 2) if usage else 0.0,
    }
    if not exited:
        raise ChildFailed("timeout", {"limit": "timeout_s", "max": limits.timeout_s, **stats})
    if status is not None:
        _raise_for_abnormal_exit(status, limits, stats)
    result = _load_result(result_path, stats)
    if "error" in result:
        error = result["error"]
        error = error if isinstance(error, dict) else {}
        details = error.get("details")
        message = error.get("message")
        raise ChildReported(
            error.get("code"),
            message if isinstance(message, str) else None,
            {**(details if isinstance(details, dict) else {}), **stats},
        )
    return ChildRun(payload=result["ok"], peak_rss_mb=peak_rss_mb, cpu_s=stats["child_cpu_s"], wall_s=wall_s)


def _send_request(proc: subprocess.Popen[bytes], request: dict[str, Any]) -> None:
    """Write the request and close stdin; a child that already died is judged by how it ended."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(json.dumps(request).encode())
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int | None, resource.struct_rusage | None]:
    """Reap the child and return its wait status and resource usage.

    (None, None) if something else in this process reaped it first (a stray `waitpid(-1)`); the
    result file, if any, then decides.
    """
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.returncode = -1
        return None, None
    # We reaped it ourselves; tell Popen so it never waits on a pid that may be reused.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status, usage


def _own_high_water_kb(pid: int) -> tuple[int, int]:
    """The child's peak RSS and peak address space so far (VmHWM, VmPeak); 0 once it is a zombie or gone."""
    found = {"VmHWM:": 0, "VmPeak:": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in found:
                    found[key] = int(line.split()[1])
    except (OSError, ValueError):
        return 0, 0
    return found["VmHWM:"], found["VmPeak:"]


def _wait_for_exit(pid: int, *, deadline: float, high_water_kb: list[int]) -> bool:
    """True once the child has exited (left unreaped), False if the deadline passed first.

    While waiting, `high_water_kb` tracks the child's own peak RSS and peak address space.
    """
    delay = 0.001
    while True:
        rss_kb, vm_kb = _own_high_water_kb(pid)
        high_water_kb[0] = max(high_water_kb[0], rss_kb)
        high_water_kb[1] = max(high_water_kb[1], vm_kb)
        # WNOWAIT: leave the zombie in place so its process group cannot be reused before we kill it.
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True  # already reaped by someone else: it has certainly exited
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


def _raise_for_abnormal_exit(status: int, limits: ChildLimits, stats: dict[str, Any]) -> None:
    """Map a child that died (signal, out-of-memory or output exit, unexpected status) to a `ChildFailed`."""
    memory = {"limit": "memory_mb", "max": limits.memory_mb}
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status))
        details = {"signal": sig.name, **stats}
        if sig == signal.SIGXCPU:
            raise ChildFailed("cpu", {"limit": "cpu_s", "max": limits.cpu_s, **details})
        if sig == signal.SIGXFSZ:
            raise ChildFailed("output", {"limit": "output", **details})
        peak_mb = max(stats["child_peak_rss_mb"], stats["child_peak_vm_mb"])
        if sig in _MEMORY_SIGNALS and peak_mb >= _NEAR_MEMORY_LIMIT * limits.memory_mb:
            raise ChildFailed("memory", {**memory, **details})
        raise ChildFailed("crashed", details)
    code = os.WEXITSTATUS(status)
    if code == EXIT_OUT_OF_MEMORY:
        raise ChildFailed("memory", {**memory, **stats})
    if code == EXIT_OUTPUT_TOO_LARGE:
        raise ChildFailed("output", {"limit": "output", **stats})
    if code != 0:
        raise ChildFailed("crashed", {"exit_code": code, **stats})


def _load_result(path: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """The child's result; a clean exit without a well-formed one means the child is broken."""
    try:
        result = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ChildFailed("crashed", {"reason": "no result", **stats}) from e
    if not isinstance(result, dict) or not ({"ok", "error"} & result.keys()):
        raise ChildFailed("crashed", {"reason": "malformed result", **stats})
    return result


# --- child side ------------------------------------------------------------------------------


def error_result(code: str, message: str | None = None, **details: Any) -> dict[str, Any]:
    """A handler's failure in the result protocol; `details` must never hold the input's text."""
    error: dict[str, Any] = {"code": code, "details": details}
    if message is not None:
        error["message"] = message
    return {"error": error}


def apply_limits(*, memory_mb: int, cpu_s: int, output_bytes: int) -> None:
    """Cap this process's address space, CPU time and file writes, and forbid core dumps."""
    _set_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    # Soft limit sends SIGXCPU (reported as a timeout); the hard one, a second later, SIGKILL.
    _set_limit(resource.RLIMIT_CPU, cpu_s, hard=cpu_s + 1)
    _set_limit(resource.RLIMIT_FSIZE, output_bytes)
    # A crashing child must not leave gigabyte core files behind.
    _set_limit(resource.RLIMIT_CORE, 0)


def _set_limit(kind: int, soft: int, *, hard: int | None = None) -> None:
    """Set an rlimit, never above the hard limit we were given (lowering is always allowed)."""
    _, current_hard = resource.getrlimit(kind)
    wanted_hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        wanted_hard = min(wanted_hard, current_hard)
        soft = min(soft, current_hard)
    resource.setrlimit(kind, (soft, wanted_hard))


def child_main(handler: Handler) -> None:
    """Entry point of a child: read the request, limit ourselves, run `handler`, write its result."""
    request = json.load(sys.stdin)
    apply_limits(**request["limits"])
    result_path = Path(request["result_path"])
    try:
        result = handler(request["payload"])
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)
    try:
        _write_json(result_path, result)
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)
    except OSError as e:
        # Python ignores SIGXFSZ, so RLIMIT_FSIZE shows up here as EFBIG.
        if e.errno != errno.EFBIG:
            raise
        os._exit(EXIT_OUTPUT_TOO_LARGE)


def _write_json(path: Path, result: dict[str, Any]) -> None:
    """Write atomically, so a child killed mid-write leaves no half result to misread."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, path)
