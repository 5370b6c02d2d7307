"""Merging: one record from the records of a document's chunks.

Each chunk saw only part of the document, so chunks disagree or stay silent. Lists are unioned
(without duplicates that differ only in case, spacing or punctuation); a scalar is decided by the
source itself: the value that is actually written in the document wins (exact over normalized over
fuzzy), then the value most chunks agree on, then the earliest chunk's. A field is None only when
no chunk states it.
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from rapidfuzz import fuzz

from workers.documents.model import Document
from workers.errors import WorkerError
from workers.pipeline.grounding import MATCH_RANK, SourceIndex, normalize_text, source_index

Span = tuple[int, int]


@dataclass(frozen=True)
class _Source:
    """One chunk's value for a field, with the chunk it came from."""

    value: Any
    spans: tuple[Span, ...]
    chunk: int


class _Merger:
    def __init__(self, index: SourceIndex) -> None:
        self.index = index

    def level(self, value: Any, spans: tuple[Span, ...]) -> int:
        """How strongly a scalar is grounded: 3 exact, 2 normalized, 1 fuzzy, 0 not found or not text."""
        if isinstance(value, dict | list):
            return 0
        _, kind = self.index.locate(value, spans or None, cap=1)
        return MATCH_RANK[kind] if kind else 0

    def found(self, item: Any) -> bool:
        """Whether a list item is written in the document: a string itself, an object by its first text field."""
        label = _first_string(item) if isinstance(item, dict) else item
        return label is not None and self.index.contains(label)

    def scalar(self, sources: list[_Source]) -> _Source:
        """The winning scalar: best grounding, then most chunks agreeing, then the earliest chunk."""
        groups: dict[str, list[_Source]] = {}
        for src in sources:
            groups.setdefault(_key(src.value), []).append(src)
        best: tuple[tuple[int, int, int], _Source] | None = None
        for members in groups.values():
            ranked = sorted(members, key=lambda s: (-self.level(s.value, s.spans), s.chunk))
            top = ranked[0]
            score = (self.level(top.value, top.spans), len({m.chunk for m in members}), -top.chunk)
            if best is None or score > best[0]:
                best = (score, top)
        assert best is not None  # callers pass at least one source
        return best[1]

    def obj(self, sources: list[_Source], model: type[BaseModel] | None) -> dict[str, Any]:
        """Field by field merge of objects (a record or a nested object)."""
        keys: list[str] = list(model.model_fields) if model else []
        for src in sources:
            keys += [k for k in src.value if k not in keys]
        out: dict[str, Any] = {}
        for key in keys:
            present = [s for s in sources if key in s.value]
            if not present:
                continue
            stated = [_Source(s.value[key], s.spans, s.chunk) for s in present if _stated(s.value[key])]
            sub_model, limit = _field_shape(model, key)
            if not stated:
                out[key] = [] if any(isinstance(s.value[key], list) for s in present) else None
            elif all(isinstance(s.value, list) for s in stated):
                if _merge_policy(model, key) == "first":
                    # The earliest chunk with a value found in the source: a chunk whose whole list was
                    # copied from the prompt's example (found nowhere) must not hide the real list behind it.
                    ordered = sorted(stated, key=lambda s: s.chunk)
                    found = (s.chunk for s in ordered if any(self.found(item) for item in s.value[:_FIRST_PROBE]))
                    first = next(found, ordered[0].chunk)
                    stated = [s for s in stated if s.chunk == first]
                out[key] = self.list_(stated, sub_model, limit)
            elif all(isinstance(s.value, dict) for s in stated):
                out[key] = self.obj(stated, sub_model)
            else:
                out[key] = self.scalar([s for s in stated if not isinstance(s.value, dict | list)] or stated).value
        return out

    def list_(self, sources: list[_Source], item_model: type[BaseModel] | None, limit: int | None) -> list[Any]:
        """Union of lists in order of first appearance; equal items (by key) merged into one."""
        groups: dict[str, list[_Source]] = {}
        for src in sources:
            for item in src.value:
                if _stated(item):
                    groups.setdefault(_item_key(item), []).append(_Source(item, src.spans, src.chunk))
        groups = _fold_near_duplicates(groups)
        merged: list[tuple[Any, tuple[int, int, int]]] = []
        for order, members in enumerate(groups.values()):
            if all(isinstance(m.value, dict) for m in members):
                value: Any = self.obj(members, item_model)
                label = _first_string(value)
                level = max(self.level(label, m.spans) for m in members) if label is not None else 0
            else:
                # Among spellings of one item, the best grounded and then the most complete one wins.
                top = max(members, key=lambda m: (self.level(m.value, m.spans), len(str(m.value)), -m.chunk))
                value, level = top.value, self.level(top.value, top.spans)
            merged.append((value, (level, len({m.chunk for m in members}), -order)))
        if limit is not None and len(merged) > limit:
            keep = sorted(range(len(merged)), key=lambda i: merged[i][1], reverse=True)[:limit]
            merged = [merged[i] for i in sorted(keep)]
        return [value for value, _ in merged]


_SPELLING_RATIO = 85.0


def _words(value: Any) -> list[str]:
    label = _first_string(value) if isinstance(value, dict) else value
    return (normalize_text(label) or label.strip().lower()).split() if isinstance(label, str) else []


def _same_spelling(a: list[str], b: list[str]) -> bool:
    """Word by word equal, or near-equal alphabetic words ("Holding"/"Holdings"): never digits ("Party 1")."""
    return len(a) == len(b) and all(
        x == y or (x.isalpha() and y.isalpha() and min(len(x), len(y)) >= 4 and fuzz.ratio(x, y) >= _SPELLING_RATIO)
        for x, y in zip(a, b, strict=True)
    )


def _folds_into(short: list[str], long: list[str]) -> bool:
    """`short` names the same thing as `long`: its words run inside it, or it is a misspelling of it."""
    if not short or not long:
        return False
    if len(short) < len(long) and any(long[i : i + len(short)] == short for i in range(len(long) - len(short) + 1)):
        return True
    return _same_spelling(short, long)


def _fold_near_duplicates(groups: dict[str, list[_Source]]) -> dict[str, list[_Source]]:
    """Merge groups that name one item: "Sears" and "Co." into "Sears, Roebuck and Co.", "Holding" into
    "Holdings". A small model splits names at commas and misspells them; the list keeps one entry each,
    placed where its longest spelling first appeared."""
    spelled = {k: max((_words(m.value) for m in members), key=len) for k, members in groups.items()}
    by_length = sorted(groups, key=lambda k: len(spelled[k]))
    target = {k: k for k in groups}
    for short in by_length:
        for long in reversed(by_length):
            if long != short and target[long] == long and _folds_into(spelled[short], spelled[long]):
                target[short] = long
                break
    out: dict[str, list[_Source]] = {}
    for key in groups:
        root = key
        while target[root] != root:
            root = target[root]
        out.setdefault(root, []).extend(groups[key])
    return out


def _stated(value: Any) -> bool:
    return value is not None and value != [] and value != "" and value != {}


def _key(value: Any) -> str:
    """Equality for voting: case, whitespace and punctuation do not make values different."""
    if isinstance(value, str):
        return "s:" + (normalize_text(value) or value.strip().lower())
    return "j:" + json.dumps(value, sort_keys=True, default=str)


def _first_string(item: dict[str, Any]) -> str | None:
    return next((v for v in item.values() if isinstance(v, str) and v.strip()), None)


# Trailing legal-form words do not make two names different entities ("Kite Pharma", "KITE PHARMA, INC.").
_LEGAL_FORMS = frozenset(
    "inc incorporated llc ltd limited corp corporation co company lp llp plc sa ag gmbh nv bv".split()
)


def _name_key(value: str) -> str:
    words = (normalize_text(value) or value.strip().lower()).split()
    while len(words) > 1 and words[-1] in _LEGAL_FORMS:
        words.pop()
    return "s:" + " ".join(words)


def _item_key(item: Any) -> str:
    """List items are the same when their keys match: an object's key is its first text field (e.g. name)."""
    if isinstance(item, dict):
        label = _first_string(item)
        return _name_key(label) if label is not None else _key(item)
    return _name_key(item) if isinstance(item, str) else _key(item)


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _field_shape(model: type[BaseModel] | None, key: str) -> tuple[type[BaseModel] | None, int | None]:
    """(nested model of the field or its items, max list length) from the schema, where it says."""
    if model is None or key not in model.model_fields:
        return None, None
    info = model.model_fields[key]
    limit = next((m.max_length for m in info.metadata if isinstance(getattr(m, "max_length", None), int)), None)
    annotation = info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next((a for a in get_args(annotation) if a is not type(None)), annotation)
    return _find_model(annotation), limit


_FIRST_PROBE = 8
"""Items of a chunk's list looked up to decide whether the chunk read its list off the document."""

MERGE_POLICY_KEY = "x-merge"
"""A field's merge policy in its JSON Schema: "union" (default) or "first" (the earliest chunk that
states the list, with at least one item found in the source, wins whole: for lists a document defines
once, such as the parties in a preamble)."""


def _merge_policy(model: type[BaseModel] | None, key: str) -> str:
    if model is None or key not in model.model_fields:
        return "union"
    extra = model.model_fields[key].json_schema_extra
    policy = extra.get(MERGE_POLICY_KEY, "union") if isinstance(extra, dict) else "union"
    return str(policy)


def merge_records(
    parts: Sequence[tuple[dict[str, Any], Sequence[tuple[int, int]]]],
    model: type[BaseModel],
    doc: Document,
    *,
    index: SourceIndex | None = None,
) -> dict[str, Any]:
    """One validated record (as JSON-ready data) from the validated records of a document's chunks.

    Each part is `(record, spans)`, where spans are the chunk's `[start, end)` offsets; grounding is
    looked for in those spans first. Raises `WorkerError(code="merge_invalid")` if the merged record
    does not validate, which means a bug here rather than bad input.
    """
    merger = _Merger(index if index is not None else source_index(doc))
    sources = [_Source(record, tuple(spans), i) for i, (record, spans) in enumerate(parts)]
    merged = merger.obj(sources, model)
    try:
        return model.model_validate(merged).model_dump(mode="json")
    except ValidationError as e:
        raise WorkerError(
            "the merged record does not validate against its schema",
            code="merge_invalid",
            details={"errors": [{"loc": list(err["loc"]), "type": err["type"]} for err in e.errors()]},
        ) from e
