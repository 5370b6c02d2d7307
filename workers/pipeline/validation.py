"""Parse and validate one model answer; anything short of a valid record is an error, never a partial."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from workers.engines.protocol import STOPPED_CODES, GenerationResult
from workers.errors import WorkerError


class OutputError(WorkerError):
    """A generation that cannot become a record: truncated, not JSON, or not schema-valid."""

    code = "invalid_output"


def tidy(value: Any) -> Any:
    """Every string trimmed, whitespace runs (no-break spaces too) made one space; a blank string is "not
    stated" (null, or dropped from a list). Models pad values; grounding and people should not see it."""
    if isinstance(value, str):
        text = " ".join(value.split())
        return text or None
    if isinstance(value, list):
        items = [tidy(v) for v in value]
        return [v for v, raw in zip(items, value, strict=True) if v is not None or not isinstance(raw, str)]
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    return value


def validate_output(result: GenerationResult, model: type[BaseModel]) -> dict[str, Any]:
    """The validated record as plain JSON data, or `OutputError` saying why not (no values in messages)."""
    if result.finish_reason == "error":
        code = result.error_code if result.error_code and result.error_code in STOPPED_CODES else "generation_error"
        raise OutputError(f"generation failed: {result.error}", code=code)
    if result.finish_reason == "length":
        raise OutputError(f"output truncated at {result.completion_tokens} tokens", code="output_truncated")
    try:
        payload = json.loads(result.text)
    except json.JSONDecodeError as e:
        raise OutputError(f"output is not JSON (line {e.lineno}, column {e.colno})", code="invalid_json") from e
    try:
        record = model.model_validate(tidy(payload))
    except ValidationError as e:
        where = sorted({".".join(str(p) for p in err["loc"]) or "<root>" for err in e.errors()})
        raise OutputError(f"output fails the schema at: {', '.join(where)}", code="validation_failed") from e
    data: dict[str, Any] = record.model_dump(mode="json")
    return data
