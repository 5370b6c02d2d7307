"""Per-value outcomes: was each stated value right, and what confidence did the record give it.

The unit calibration is about: one value of one record. A value counts only where the gold labels say
something about its field (ACI-Bench labels three fields of a clinical note; a value of another field is
neither right nor wrong here and is left out).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from evaluation.aci import ACI_FIELDS, clinical_record_to_gold_shape, field_matches
from evaluation.datasets import DatasetKind
from evaluation.kleister import nda_record_to_labels
from evaluation.reviewed import reviewed_correct
from workers.pipeline.confidence import field_of


@dataclass(frozen=True)
class ValueOutcome:
    """One stated value: where it is, whether it is right, the confidence and signals its record gave it."""

    document: str
    path: str
    field: str
    correct: bool
    confidence: float | None
    signals: dict[str, Any] | None


def _kleister_correct(data: dict[str, Any], gold: list[str]) -> dict[str, bool]:
    """Per value path: whether its label is among the gold labels (each gold label matched once)."""
    remaining = Counter(label.upper() for label in gold)
    out: dict[str, bool] = {}
    paths = ["effective_date", "jurisdiction", "term"] + [f"parties.{i}" for i in range(len(data.get("parties") or []))]
    for path in paths:
        field, _, index = path.partition(".")
        value = data.get(field) if not index else data["parties"][int(index)]
        labels = nda_record_to_labels({field: [value] if index else value})
        if not labels:
            continue
        label = labels[0].upper()
        out[path] = remaining[label] > 0
        if out[path]:
            remaining[label] -= 1
    return out


def _aci_correct(data: dict[str, Any], gold: dict[str, Any]) -> dict[str, bool]:
    shaped = clinical_record_to_gold_shape(data)
    return {
        field: gold.get(field) is not None and field_matches(field, shaped[field], gold[field])
        for field in ACI_FIELDS
        if shaped.get(field) is not None
    }


def value_outcomes(kind: DatasetKind, name: str, record: dict[str, Any], gold: Any) -> list[ValueOutcome]:
    """The scored values of one record (a failed document has none)."""
    data = record.get("data")
    if not isinstance(data, dict):
        return []
    if kind == "kleister":
        correct = _kleister_correct(data, gold)
    elif kind == "reviewed":
        correct = reviewed_correct(data, gold)
    else:
        correct = _aci_correct(data, gold)
    confidence = record.get("confidence") or {}
    signals = (record.get("signals") or {}).get("values") or {}
    return [
        ValueOutcome(name, path, field_of(path), ok, confidence.get(path), signals.get(path))
        for path, ok in correct.items()
    ]
