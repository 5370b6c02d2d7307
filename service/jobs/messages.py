"""The task message: what the relay publishes and the Celery task validates, and nothing more.

It lives with the rest of a job's life rather than beside the task, so the relay can publish it without
loading the pipeline. A worker receives a job id only: no document text or PHI ever travels through
Redis, and the version field lets a future message shape be refused rather than misread.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ExtractMessage(BaseModel):
    """The task's whole message: a schema version and a job id (never document text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    job_id: uuid.UUID

    def payload(self) -> dict[str, Any]:
        """The JSON-ready form that travels through Redis."""
        return self.model_dump(mode="json")
