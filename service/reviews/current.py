"""A record's current version: the model's output with each field's latest reviewer decision applied.

Pure functions over plain data, shared by the API, the batch exports and `abstractor export-gold`. A
field is a top-level property of the schema; its values' evidence, flags and confidences are those
whose path is the field or starts with `field.`. The model's own record is never changed: every
function here returns new objects.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

ReviewState = Literal["unreviewed", "in_review", "reviewed"]
REVIEW_STATES: Final = ("unreviewed", "in_review", "reviewed")
FIELD_ACTIONS: Final = ("accept", "correct", "reject")
CORRECTION_NOT_FOUND = "correction_not_found_in_source"


@dataclass(frozen=True)
class Decision:
    """One stored decision, detached from the ORM (`field` is None for `finish`)."""

    id: int
    field: str | None
    action: str
    value: Any
    evidence: Mapping[str, Any] | None
    flags: Sequence[Any] | None
    reviewer_key_id: uuid.UUID | None
    reviewer_name: str
    created_at: dt.datetime


def review_state(decisions: Sequence[Decision]) -> ReviewState:
    """`unreviewed` without decisions, `reviewed` when the latest one is a finish, else `in_review`."""
    if not decisions:
        return "unreviewed"
    return "reviewed" if max(decisions, key=lambda d: d.id).action == "finish" else "in_review"


def latest_by_field(decisions: Iterable[Decision]) -> dict[str, Decision]:
    """Each field's latest decision (by id: the order they were made)."""
    out: dict[str, Decision] = {}
    for decision in sorted(decisions, key=lambda d: d.id):
        if decision.field is not None and decision.action in FIELD_ACTIONS:
            out[decision.field] = decision
    return out


def reviewers(decisions: Iterable[Decision]) -> list[dict[str, Any]]:
    """Who decided anything on this record, in order of first decision, each once."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for decision in sorted(decisions, key=lambda d: d.id):
        key_id = None if decision.reviewer_key_id is None else str(decision.reviewer_key_id)
        seen.setdefault((key_id or "", decision.reviewer_name), {"key_id": key_id, "name": decision.reviewer_name})
    return list(seen.values())


def under(path: str, field: str) -> bool:
    """Whether a value path belongs to a field."""
    return path == field or path.startswith(field + ".")


def not_stated(json_schema: Mapping[str, Any], field: str) -> Any:
    """What "not stated" is for a field: an empty list for list fields, else null."""
    prop = (json_schema.get("properties") or {}).get(field) or {}
    kinds = prop.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "array" in kinds or any("array" == (o or {}).get("type") for o in prop.get("anyOf", [])):
        return []
    return None


def apply_decisions(
    data: Mapping[str, Any], decisions: Iterable[Decision], json_schema: Mapping[str, Any]
) -> dict[str, Any]:
    """The record's data with each field's latest decision applied (accept keeps the model's value)."""
    current = copy.deepcopy(dict(data))
    for field, decision in latest_by_field(decisions).items():
        if decision.action == "correct":
            current[field] = copy.deepcopy(decision.value)
        elif decision.action == "reject":
            current[field] = not_stated(json_schema, field)
    return current


def current_record(
    record: Mapping[str, Any], decisions: Sequence[Decision], json_schema: Mapping[str, Any]
) -> dict[str, Any]:
    """The current version of a record shaped like the model's (`data`, `evidence`, `flags`, `confidence`).

    A corrected field carries the evidence found for its new value and its flags (`correction_not_found_in_source`
    when it could not be found); a rejected one carries none; a decided field's confidence is 1.0, a person
    having checked it.
    """
    latest = latest_by_field(decisions)
    evidence = dict(record.get("evidence") or {})
    flags = list(record.get("flags") or [])
    confidence = dict(record.get("confidence") or {})
    for field, decision in latest.items():
        if decision.action == "accept":
            confidence = {p: (1.0 if under(p, field) else c) for p, c in confidence.items()}
            flags = [f for f in flags if not under(str(f.get("path", "")), field)]
            continue
        evidence = {p: e for p, e in evidence.items() if not under(p, field)}
        flags = [f for f in flags if not under(str(f.get("path", "")), field)]
        confidence = {p: c for p, c in confidence.items() if not under(p, field)}
        if decision.action == "correct":
            evidence.update(decision.evidence or {})
            flags.extend(decision.flags or [])
            confidence[field] = 1.0
    return {
        **record,
        "data": apply_decisions(record.get("data") or {}, decisions, json_schema),
        "evidence": evidence,
        "flags": flags,
        "confidence": confidence,
    }


def field_confidences(confidence: Mapping[str, float], fields: Iterable[str]) -> dict[str, float | None]:
    """Each field's lowest value confidence (None when it states nothing)."""
    out: dict[str, float | None] = {}
    for field in fields:
        scores = [c for p, c in confidence.items() if under(p, field)]
        out[field] = min(scores) if scores else None
    return out
