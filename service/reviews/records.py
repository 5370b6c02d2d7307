"""From stored rows to review data: decisions detached from the ORM, the model's record and its current version."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.reviews.current import Decision, current_record, review_state, reviewers
from service.store.models import Result, ReviewDecision


def detach(rows: Iterable[ReviewDecision]) -> list[Decision]:
    """Plain copies of stored decisions."""
    return [
        Decision(
            id=row.id,
            field=row.field,
            action=row.action.value,
            value=row.value,
            evidence=row.evidence,
            flags=row.flags,
            reviewer_key_id=row.reviewer_key_id,
            reviewer_name=row.reviewer_name,
            created_at=row.created_at,
        )
        for row in rows
    ]


def model_record(result: Result) -> dict[str, Any]:
    """The model's record as stored: data, evidence, flags, confidences and what produced them."""
    quality: dict[str, Any] = result.flags or {}
    return {
        "data": result.data,
        "evidence": result.evidence or {},
        "flags": list(quality.get("items", [])),
        "model": quality.get("model"),
        "document": quality.get("document"),
        "confidence": quality.get("confidence") or {},
        "calibration": quality.get("calibration") or {"status": "uncalibrated"},
    }


def reviewed(result: Result, rows: Iterable[ReviewDecision], json_schema: Mapping[str, Any]) -> dict[str, Any]:
    """`model` (the stored record), `current` (decisions applied), `state` and `reviewers`."""
    decisions = detach(rows)
    original = model_record(result)
    return {
        "model": original,
        "current": current_record(original, decisions, json_schema),
        "state": review_state(decisions),
        "reviewers": reviewers(decisions),
        "decisions": decisions,
    }
