"""Parsers in a fresh, resource-limited child process, so a hostile file can only kill the child.

The child itself is the house's one sandbox (`workers/sandbox.py`); this is its documents' face:
`run_in_child` says what each ending means for a document, as a `DocumentError` (`timeout`,
`too_large`, `parser_crashed`, or the code the parser reported) or a `ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from workers import sandbox
from workers.documents.errors import DOCUMENT_ERROR_CODES, DocumentError
from workers.errors import ConfigError
from workers.sandbox import EXIT_OUT_OF_MEMORY, ChildLimits, ChildRun, apply_limits, child_main, error_result

__all__ = [
    "EXIT_OUT_OF_MEMORY",
    "ChildLimits",
    "ChildRun",
    "apply_limits",
    "child_main",
    "error_result",
    "run_in_child",
]

_OUTPUT_MESSAGE: Final = "The document's extracted text exceeds the output limit."


def run_in_child(module: str, payload: dict[str, Any], *, limits: ChildLimits, workdir: Path) -> ChildRun:
    """Run `module`'s `child_main` on `payload` in a sandboxed child; raise DocumentError on any failure.

    `workdir` must be a private directory the caller removes afterwards; the result file goes there.
    """
    try:
        return sandbox.run_in_child(module, payload, limits=limits, workdir=workdir)
    except sandbox.ChildFailed as e:
        raise _failure(e, limits) from None
    except sandbox.ChildReported as e:
        raise _reported(e) from None


def _failure(failed: sandbox.ChildFailed, limits: ChildLimits) -> DocumentError:
    details = failed.details
    if failed.reason == "timeout":
        return DocumentError(
            "timeout", f"Reading the document took longer than the limit of {limits.timeout_s:g} s.", details=details
        )
    if failed.reason == "cpu":
        return DocumentError(
            "timeout", f"Reading the document used more than the CPU limit of {limits.cpu_s} s.", details=details
        )
    if failed.reason == "output":
        return DocumentError("too_large", _OUTPUT_MESSAGE, details=details)
    if failed.reason == "memory":
        message = f"Reading the document needed more than the memory limit of {limits.memory_mb} MB."
        return DocumentError("too_large", message, details=details)
    return DocumentError("parser_crashed", details=details)


def _reported(reported: sandbox.ChildReported) -> Exception:
    code, details = reported.code, reported.details
    if code == ConfigError.code:
        return ConfigError(reported.message or "The document reader is misconfigured.", details=details)
    if code not in DOCUMENT_ERROR_CODES:
        stats = {k: v for k, v in details.items() if k.startswith("child_")}
        return DocumentError("parser_crashed", details={"reason": "unknown error code", **stats})
    return DocumentError(code, reported.message, details=details)
