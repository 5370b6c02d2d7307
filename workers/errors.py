"""The house's one error base, `AbstractorError`, and the workers' root, split the way callers must react.

The base lives here because `workers` may never import `service` while every part of the service may
import the workers' error types (house plan, "Allowed imports"): the store's, the batches' and the
API's roots all derive from it, so one `code`/`message`/`details` shape and one `to_dict` serve them all.
"""

from __future__ import annotations

from typing import Any


class AbstractorError(Exception):
    """Base of every error our packages raise on purpose (bar `schemas`, which imports nothing of ours).

    Carries a machine-readable `code` (a class default, or given), a message safe to show (never document
    content) and details of ids, codes and limits.
    """

    code: str = "abstractor_error"

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


class WorkerError(AbstractorError):
    """Root of every error raised by `workers`."""

    code = "worker_error"


class ConfigError(WorkerError):
    """The deployment is wrong (missing model, bad setting): retrying will not help."""

    code = "config_error"


class TransientError(WorkerError):
    """A passing fault (server down, timeout talking to a peer): the queue may retry."""

    code = "transient_error"


class BadInputError(WorkerError):
    """The document or request itself cannot be processed: never retried."""

    code = "bad_input"
