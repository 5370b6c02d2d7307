"""Running an evaluation: documents through the pipeline, predictions kept on disk, resumable, split.

Every document's outcome (its record, or its error) is one JSON line of the predictions file, written
as soon as it is known. Run again with the same file, the documents already in it are taken from it
and only the missing ones are extracted, so a cut evaluation loses nothing; a file written by another
schema or model is refused rather than mixed in. A torn last line (the process killed mid-write) is
dropped and its document run again.

Documents fall into two fixed halves by a hash of their name (`split_of`): calibrations are fitted on
`fit` and their quality reported on `report`, never on the values they were fitted on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from workers.errors import AbstractorError

Split = Literal["fit", "report", "all"]


def split_of(name: str) -> Literal["fit", "report"]:
    """The half a document belongs to, for ever (a hash of its name, not of its position in a listing)."""
    return "fit" if hashlib.sha256(name.encode("utf-8")).digest()[0] < 128 else "report"


def in_split(name: str, split: Split) -> bool:
    """Whether a document belongs to the split asked for."""
    return split == "all" or split_of(name) == split


class PredictionsError(ValueError):
    """The predictions file belongs to another run (schema or model) and cannot be resumed into this one."""


@dataclass(frozen=True)
class Prediction:
    """One document's line: its name, its gold labels, and the record or the error."""

    name: str
    gold: Any
    line: dict[str, Any]

    @property
    def record(self) -> dict[str, Any] | None:
        """The record, or None when extraction failed."""
        return None if "error" in self.line else self.line


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """The complete lines of a predictions file by document name (the torn last line, if any, dropped)."""
    if not path.is_file():
        return {}
    out: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # written partly when the process died: run that document again
            entry = json.loads(line)
            out[str(entry["name"])] = entry
    return out


def _rewrite_complete(path: Path, lines: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for entry in lines:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    tmp.replace(path)


def run_predictions(
    items: list[tuple[str, Any, Any]],
    extract: Callable[[Any], dict[str, Any]],
    *,
    path: Path | None,
    expect: dict[str, Any],
    on_done: Callable[[], None] = lambda: None,
) -> Iterator[tuple[Prediction, bool]]:
    """(prediction, was it run now) per item, in order; new lines are appended to `path` as they come.

    `extract(source)` returns a record or raises an error with `to_dict()`; `expect` holds the fields
    every resumed line must share with this run (schema, model, grammar backend).
    """
    done = read_predictions(path) if path is not None else {}
    for name, entry in done.items():
        mismatched = {
            k: (entry.get("run") or {}).get(k) for k in expect if (entry.get("run") or {}).get(k) != expect[k]
        }
        if mismatched:
            raise PredictionsError(f"{path} line {name!r} was written by another run: {mismatched} differ")
    if path is not None and done:
        _rewrite_complete(path, done.values())
    out = path.open("a", encoding="utf-8") if path is not None else None
    try:
        for name, source, gold in items:
            if name in done:
                on_done()
                yield Prediction(name, gold, done[name]), False
                continue
            try:
                line: dict[str, Any] = extract(source)
            except AbstractorError as e:  # a failed document scores as "nothing predicted", and is counted
                line = {"error": e.to_dict()}
            entry = {"name": name, "gold": gold, "run": expect, **line}
            if out is not None:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
                out.flush()
            on_done()
            yield Prediction(name, gold, entry), True
    finally:
        if out is not None:
            out.close()
