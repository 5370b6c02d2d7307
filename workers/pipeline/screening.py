"""Screening: values the source does not contain leave `data`, are kept aside in `rejected`, and flagged.

A small model copies from its worked example or invents; grounding tells us which values are not in
the document. Keeping them in `data` would pass them off as extracted, so by default they move to
`rejected` (path -> value) with a `not_found_in_source` flag, where a reviewer still sees them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError


def _path_key(path: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key placing deeper paths and higher list indexes first, so removals keep indexes valid."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in path.split("."))


def _parent(data: Any, parts: list[str]) -> Any:
    node = data
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _enclosing_item(parts: list[str]) -> list[str] | None:
    """The path of the innermost list item that holds `parts` (that item is what gets removed)."""
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].isdigit():
            return parts[: i + 1]
    return None


def screen_ungrounded(
    data: dict[str, Any], paths: Iterable[str], model: type[BaseModel]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(screened data, rejected)`: each path set to null, or its list item removed; still schema-valid.

    A required sub-field that is not in the source (a medication without a groundable name) takes
    its whole list item with it, since the item cannot stand without it.
    """
    out = copy.deepcopy(data)
    rejected: dict[str, Any] = {}
    for path in sorted(set(paths), key=_path_key, reverse=True):
        parts = path.split(".")
        try:
            parent = _parent(out, parts[:-1])
        except (KeyError, IndexError):
            continue  # already removed with an enclosing item
        last = parts[-1]
        if isinstance(parent, list):
            rejected[path] = parent.pop(int(last))
            continue
        rejected[path] = parent[last]
        parent[last] = None
        try:
            model.model_validate(out)
        except ValidationError:
            parent[last] = rejected[path]  # null is not allowed here: drop the enclosing item instead
            item = _enclosing_item(parts[:-1])
            if item is None:
                raise
            holder = _parent(out, item[:-1])
            holder.pop(int(item[-1]))
    model.model_validate(out)
    return out, rejected
