"""Third-party libraries kept quiet: what outlines, llguidance, llama.cpp, xgrammar and vLLM print on a
failure quotes the document (the tokens generated so far) and the schema, so none of it may reach
stderr or our logs. Each is silenced at its source, by its own verbosity setting, never by redirecting
file descriptor 2 (a worker is multi-threaded: a redirect would swallow, or leak, other threads' output).

- llguidance's Rust side writes warnings and errors ("Warning: lexer error: ...; stopping") straight to
  fd 2 unless its matcher is built with `log_level=0`: every `LLMatcher` of ours is
  (`workers.engines.constraints.LLGuidanceMask`). outlines' own llguidance processor, which passes a
  failed matcher's `get_error()` (the tokens so far and the whole grammar) to `warnings.warn`, is not used.
- llama.cpp (and ggml) log through one callback, `llama_log_set`; llama-cpp-python's prints ERROR lines
  to `sys.stderr`. `quiet_llama_cpp` installs one that drops every line.
- Python warnings raised from those packages are ignored (`quiet_python`), their loggers silenced.
- vLLM runs its engine core in a child process that our logging cannot reach, and configures its own
  handlers (stdout) there and here: `VLLM_LOGGING_CONFIG_PATH` names a `dictConfig` file (written by
  `quiet_vllm`) that gives the `vllm` logger a null handler in both, unless the operator set one.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

THIRD_PARTIES = ("outlines", "outlines_core", "llguidance", "llama_cpp", "llama-cpp-python", "xgrammar", "vllm")
"""Packages (and llama-cpp-python's logger name) whose output never reaches stderr or our logs."""

_MODULES = r"(outlines|outlines_core|llguidance|llama_cpp|xgrammar|vllm)(\..*)?"
_SILENT = logging.CRITICAL + 10
_lock = threading.Lock()
_llama_callback: Any = None  # ctypes keeps no reference of its own: llama.cpp would call freed memory


def quiet_python() -> None:
    """Warnings raised from the third parties ignored, their loggers off; idempotent."""
    # Filters are process-wide; re-adding an identical one replaces it (no growth).
    warnings.filterwarnings("ignore", module=_MODULES)
    # outlines reads the vocabulary through llama_token_get_attr, deprecated in llama-cpp-python: one
    # DeprecationWarning per token (151,936), attributed to whichever frame called it.
    warnings.filterwarnings("ignore", message="llama_token_get_attr is deprecated", category=DeprecationWarning)
    for name in THIRD_PARTIES:
        logger = logging.getLogger(name)
        logger.setLevel(_SILENT)
        logger.propagate = False


def quiet_llama_cpp() -> None:
    """llama.cpp's and ggml's log lines dropped (call after importing llama_cpp, which installs its own)."""
    global _llama_callback
    import llama_cpp

    quiet_python()
    with _lock:
        if _llama_callback is None:

            def drop(level: int, text: bytes, user_data: Any) -> None:
                return None

            _llama_callback = llama_cpp.llama_log_callback(drop)
        llama_cpp.llama_log_set(_llama_callback, ctypes.c_void_p(0))


VLLM_LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {name: {"handlers": ["null"], "level": "CRITICAL", "propagate": False} for name in ("vllm", "xgrammar")},
}
"""vLLM's logging, here and in its engine core: nowhere."""


def quiet_vllm(folder: Path | None = None) -> Path | None:
    """Point vLLM (before it is imported) at a logging config with no output; returns the file written.

    An operator who set `VLLM_LOGGING_CONFIG_PATH` or `VLLM_CONFIGURE_LOGGING` keeps their choice.
    """
    quiet_python()
    if "VLLM_LOGGING_CONFIG_PATH" in os.environ or "VLLM_CONFIGURE_LOGGING" in os.environ:
        return None
    target = Path(folder or tempfile.mkdtemp(prefix="abstractor-vllm-")) / "vllm-logging.json"
    target.write_text(json.dumps(VLLM_LOGGING_CONFIG), encoding="utf-8")
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(target)
    return target
