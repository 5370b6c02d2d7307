"""What every request handler and use case shares: settings, the session factory, metrics, the caller."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from service.api.observability import Metrics
from service.api.throttle import AuthThrottle
from service.config import Settings


class Background(Protocol):
    """An in-process job runner the app starts and stops with itself (the embedded worker)."""

    def start(self) -> None:
        """Begin taking jobs."""

    def stop(self) -> None:
        """Finish the current job and stop."""

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""

    def alive(self) -> bool:
        """Whether it is still taking jobs (readiness reports it)."""


@dataclass(frozen=True)
class ApiContext:
    """Built once per app by `create_app`; handlers reach it through `request.app.state.ctx`."""

    settings: Settings
    session_factory: sessionmaker[Session]
    metrics: Metrics
    model: str
    backend: str
    tmp_dir: Path
    auth_throttle: AuthThrottle
    background: Background | None = None


@dataclass(frozen=True)
class Actor:
    """Who is calling: `name` goes into audit rows (`api_key:<id>`, `admin`, `anonymous`)."""

    name: str
    tenant_id: uuid.UUID | None = None

    def tenant(self) -> uuid.UUID:
        """The caller's tenant; only tenant endpoints call this, after authentication."""
        if self.tenant_id is None:
            raise RuntimeError(f"{self.name} acts for no tenant")
        return self.tenant_id
