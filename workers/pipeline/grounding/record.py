"""Grounding a record: evidence for every stated leaf value, and flags for weak, missing or low-confidence ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from workers.documents.model import Document
from workers.pipeline.grounding.index import Evidence, SourceIndex, source_index
from workers.pipeline.grounding.variants import as_text

NOT_FOUND = "not_found_in_source"
WEAK_MATCH = "weak_match"
LOW_OCR_CONFIDENCE = "low_ocr_confidence"


@dataclass(frozen=True)
class Flag:
    """A reviewer's attention point on one field path; messages never quote document text."""

    path: str
    code: str
    message: str


def iter_leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every scalar in a record; lists contribute their indexes to the path."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from iter_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            yield from iter_leaves(value, f"{prefix}.{i}" if prefix else str(i))
    else:
        yield prefix, data


def ground_record(
    data: dict[str, Any],
    doc: Document,
    spans: Sequence[tuple[int, int]] | None = None,
    *,
    index: SourceIndex | None = None,
) -> tuple[dict[str, list[Evidence]], list[Flag]]:
    """Evidence for every stated leaf value of a record, and flags for weak or missing ones.

    None, empty strings and empty lists mean "not stated": no evidence and no flag. Booleans are
    judgements, not quotes, so they are not searched either. Only paths with evidence are keys of
    the returned mapping.
    """
    idx = index if index is not None else source_index(doc)
    evidence: dict[str, list[Evidence]] = {}
    flags: list[Flag] = []
    for path, value in iter_leaves(data):
        if as_text(value) is None:
            continue
        found, kind = idx.locate(value, spans)
        if not found:
            flags.append(Flag(path, NOT_FOUND, "The value was not found in the source text."))
            continue
        evidence[path] = found
        if kind == "fuzzy":
            flags.append(Flag(path, WEAK_MATCH, "The value only approximately matches the source text."))
    return evidence, flags


def low_confidence_flags(evidence: dict[str, list[Evidence]], doc: Document) -> list[Flag]:
    """A flag for every value whose evidence lies on an OCR'd page read below the confidence threshold."""
    low = set(doc.low_confidence_pages)
    if not low:
        return []
    return [
        Flag(path, LOW_OCR_CONFIDENCE, "The value was read by OCR from a page of low recognition confidence.")
        for path, items in evidence.items()
        if any(e.page in low for e in items)
    ]
