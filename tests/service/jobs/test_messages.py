"""The task message: a version and a job id, nothing else, validated strictly."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from service.jobs.messages import ExtractMessage


def test_the_payload_is_a_version_and_a_job_id() -> None:
    job_id = uuid.uuid4()
    payload = ExtractMessage(job_id=job_id).payload()
    assert payload == {"v": 1, "job_id": str(job_id)}
    assert ExtractMessage.model_validate(payload).job_id == job_id


@pytest.mark.parametrize(
    "payload",
    [{"v": 2, "job_id": str(uuid.UUID(int=1))}, {"v": 1, "job_id": str(uuid.UUID(int=1)), "text": "x"}, {"v": 1}],
    ids=["future-version", "extra-field", "no-job"],
)
def test_anything_else_is_refused(payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExtractMessage.model_validate(payload)
