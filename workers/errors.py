"""One exception root for `workers`, split the way callers must react: fix config, retry, or reject input."""

from __future__ import annotations

from typing import Any


class WorkerError(Exception):
    """Root of every error raised by `workers`; carries a machine-readable code."""

    code: str = "worker_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The `{"code", "message", "details"}` shape shared by the CLI and the API."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class ConfigError(WorkerError):
    """The deployment is wrong (missing model, bad setting): retrying will not help."""

    code = "config_error"


class TransientError(WorkerError):
    """A passing fault (server down, timeout talking to a peer): the queue may retry."""

    code = "transient_error"


class BadInputError(WorkerError):
    """The document or request itself cannot be processed: never retried."""

    code = "bad_input"
