"""The evidence behind each extracted value: what the model's own probabilities and the source say of it.

Per stated value (every leaf and list item) four signals, all computed from what the pipeline already
has, never from another model call:
- the log-probabilities of the tokens that spelled the value, under the grammar-masked distribution
  the engine chose them from (for a string, its characters and the closing quote: ending the string is
  a choice too);
- how it was found in the source: exact, normalized, fuzzy, or not at all;
- agreement across chunks: of the chunks that stated the field, the share that stated this value;
- the OCR confidence of the pages its evidence lies on (1 for a text layer).

`workers.pipeline.calibration` turns them into a probability that the value is right.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from json_source_map import calculate

from workers.engines.protocol import TokenLogprob
from workers.pipeline.grounding.record import iter_leaves
from workers.pipeline.grounding.variants import as_text

_INDEX = re.compile(r"\.\d+(?=\.|$)")
LOGPROB_FLOOR = -20.0
"""A token the mask left almost no mass for is as wrong as it gets; lower values only add noise."""


@dataclass(frozen=True)
class ChunkAnswer:
    """One chunk's generated JSON, the tokens that spelled it, and the record it validated to."""

    text: str
    tokens: tuple[TokenLogprob, ...]
    data: dict[str, Any]


@dataclass(frozen=True)
class ValueSignals:
    """The signals of one stated value (see the module docstring)."""

    field: str
    list_item: bool
    lp_min: float | None
    lp_mean: float | None
    match: str
    agreement: float
    chunks_stated: int
    ocr_confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Plain form, kept with evaluation predictions so calibration can be refitted without the model."""
        return {
            "field": self.field,
            "list_item": self.list_item,
            "lp_min": self.lp_min,
            "lp_mean": self.lp_mean,
            "match": self.match,
            "agreement": self.agreement,
            "chunks_stated": self.chunks_stated,
            "ocr_confidence": self.ocr_confidence,
        }


def field_of(path: str) -> str:
    """A value's field: its path without list indexes ("parties.2" -> "parties")."""
    return _INDEX.sub("", path)


def _same(a: Any, b: Any) -> bool:
    ta, tb = as_text(a), as_text(b)
    if ta is None or tb is None:
        return False
    return " ".join(ta.casefold().split()) == " ".join(tb.casefold().split())


class _Answer:
    """A chunk answer with its JSON source map and its stated leaves per field, computed once."""

    def __init__(self, answer: ChunkAnswer) -> None:
        self.answer = answer
        self.leaves: dict[str, list[tuple[str, Any]]] = {}
        for path, value in iter_leaves(answer.data):
            if as_text(value) is not None:
                self.leaves.setdefault(field_of(path), []).append((path, value))
        try:
            self.spans = calculate(answer.text) if answer.tokens else {}
        except (ValueError, IndexError, KeyError):
            self.spans = {}  # not the text the record came from (e.g. repaired): no token signals

    def logprobs(self, path: str) -> list[float]:
        """Log-probabilities of the tokens that spell the value at `path` in this answer."""
        entry = self.spans.get("/" + path.replace(".", "/"))
        if entry is None:
            return []
        start, end = entry.value_start.position, entry.value_end.position
        if self.answer.text[start : start + 1] == '"':
            start += 1  # the opening quote was forced by the key before it; the closing one was a choice
        else:
            end += 1  # a number or literal ends where the model chose the next delimiter
        return [max(t.logprob, LOGPROB_FLOOR) for t in self.answer.tokens if t.end > start and t.start < end]


def value_signals(
    path: str,
    value: Any,
    evidence: Sequence[dict[str, Any]] | None,
    answers: Sequence[_Answer],
    page_confidence: dict[int, float],
) -> ValueSignals:
    """The signals of one value of the merged record (`evidence` None: not found in the source)."""
    field = field_of(path)
    stated = [a for a in answers if a.leaves.get(field)]
    agreeing: list[list[float]] = []
    for answer in stated:
        same = [p for p, v in answer.leaves[field] if _same(v, value)]
        if same:
            agreeing.append(answer.logprobs(same[0]))
    with_tokens = [lps for lps in agreeing if lps]
    best = max(with_tokens, key=lambda lps: sum(lps) / len(lps)) if with_tokens else None
    if evidence:
        kinds = {str(e.get("match")) for e in evidence}
        match = "exact" if "exact" in kinds else "normalized" if "normalized" in kinds else "fuzzy"
        ocr = min(page_confidence.get(int(e.get("page", 0)), 1.0) for e in evidence)
    else:
        match, ocr = "not_found", 1.0
    return ValueSignals(
        field=field,
        list_item=path != field,
        lp_min=min(best) if best else None,
        lp_mean=sum(best) / len(best) if best else None,
        match=match,
        agreement=len(agreeing) / len(stated) if stated else 0.0,
        chunks_stated=len(stated),
        ocr_confidence=ocr,
    )


def record_signals(
    data: dict[str, Any],
    evidence: dict[str, list[dict[str, Any]]],
    answers: Sequence[ChunkAnswer],
    page_confidence: dict[int, float],
) -> dict[str, ValueSignals]:
    """Signals for every stated value of `data`, keyed by path (a path without evidence: not found)."""
    prepared = [_Answer(a) for a in answers]
    return {
        path: value_signals(path, value, evidence.get(path), prepared, page_confidence)
        for path, value in iter_leaves(data)
        if as_text(value) is not None
    }


def rejected_signals(rejected: dict[str, Any], answers: Sequence[ChunkAnswer]) -> dict[str, ValueSignals]:
    """Signals for the values moved out of a record as not found in the source, keyed by their own paths."""
    prepared = [_Answer(a) for a in answers]
    return {
        leaf: value_signals(leaf, value, None, prepared, {})
        for path, item in rejected.items()
        for leaf, value in iter_leaves(item, path)
        if as_text(value) is not None
    }


def heuristic_score(signals: ValueSignals) -> float:
    """A score in [0, 1] ordered like correctness usually is, for combinations never calibrated.

    Labelled uncalibrated wherever it is shown: it ranks values, it does not promise a hit rate.
    """
    certainty = math.exp(signals.lp_mean) if signals.lp_mean is not None else 0.5
    found = {"exact": 1.0, "normalized": 0.9, "fuzzy": 0.6}.get(signals.match, 0.1)
    return round(certainty * found * signals.ocr_confidence, 4)
