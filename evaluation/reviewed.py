"""Reviewed sets: the records people checked in `/review`, exported by `abstractor export-gold`, as gold.

A folder holds `reviewed.jsonl` (one line per document: `name`, `schema`, and `data`, the reviewed
record) and the documents under `documents/`. Any schema works: every stated value of a top-level
field is one `field=value` label (a list gives one per item; strings compared with their whitespace
collapsed, case ignored; other values as canonical JSON), and F1 is counted per field like Kleister's.
So the reviewed records score F1 1.0 against themselves, and the model's records score the reviewers'
corrections and rejections as their errors.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evaluation.scoring import FieldScores, score_label_sets

REVIEWED_FILE = "reviewed.jsonl"
DOCUMENTS_DIR = "documents"


def reviewed_lines(directory: Path) -> list[dict[str, Any]]:
    """The lines of a reviewed set's `reviewed.jsonl`."""
    path = directory / REVIEWED_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_reviewed(directory: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """(name, document path, reviewed record data) per document; a missing document is an error."""
    out = []
    for line in reviewed_lines(directory):
        path = directory / DOCUMENTS_DIR / str(line["name"])
        if not path.is_file():
            raise FileNotFoundError(f"{path.name} is listed in {REVIEWED_FILE} but missing")
        out.append((str(line["name"]), path, dict(line["data"])))
    return out


def reviewed_schemas(directory: Path) -> set[str]:
    """The schema names (without version) the set's records were reviewed with."""
    return {str(line["schema"]).split("@", 1)[0] for line in reviewed_lines(directory)}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _stated(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def value_labels(data: dict[str, Any]) -> dict[str, str]:
    """Per value path (`field`, or `field.i` for list items): its `field=value` label."""
    out: dict[str, str] = {}
    for field, value in data.items():
        if isinstance(value, list):
            for i, item in enumerate(value):
                if _stated(item):
                    out[f"{field}.{i}"] = f"{field}={_text(item)}"
        elif _stated(value):
            out[field] = f"{field}={_text(value)}"
    return out


def record_labels(data: Any) -> list[str]:
    """Every stated value of a record as a `field=value` label."""
    return list(value_labels(data).values()) if isinstance(data, dict) else []


def score_reviewed(pairs: Iterable[tuple[Any, dict[str, Any]]], fields: Sequence[str] = ()) -> dict[str, FieldScores]:
    """Per-field counts over documents of (predicted record data, reviewed record data)."""
    return score_label_sets(((record_labels(p), record_labels(g)) for p, g in pairs), fields=fields)


def reviewed_correct(data: dict[str, Any], gold: dict[str, Any]) -> dict[str, bool]:
    """Per value path: whether its label is among the reviewed record's (each gold label matched once)."""
    remaining = Counter(label.upper() for label in record_labels(gold))
    out: dict[str, bool] = {}
    for path, label in value_labels(data).items():
        out[path] = remaining[label.upper()] > 0
        if out[path]:
            remaining[label.upper()] -= 1
    return out
