"""Counting and reporting: true/false positives per field, precision/recall/F1, one printable table."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class FieldScores:
    """Counts for one field; the ratios follow from them.

    With nothing predicted and nothing expected (tp = fp = fn = 0) there is nothing to get wrong, so
    precision, recall and F1 are 1.0; otherwise an empty denominator gives 0.0.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: FieldScores) -> FieldScores:
        return FieldScores(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def _empty(self) -> bool:
        return self.tp == self.fp == self.fn == 0

    @property
    def precision(self) -> float:
        """tp / (tp + fp)."""
        if self._empty:
            return 1.0
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn)."""
        if self._empty:
            return 1.0
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall: 2tp / (2tp + fp + fn)."""
        if self._empty:
            return 1.0
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)


def micro(scores: Mapping[str, FieldScores]) -> FieldScores:
    """All fields' counts added up: the micro-average."""
    total = FieldScores()
    for s in scores.values():
        total = total + s
    return total


def label_key(label: str) -> str:
    """The field of a `key=value` label (the whole label when it has no `=`)."""
    return label.split("=", 1)[0]


def score_label_sets(
    pairs: Iterable[tuple[Sequence[str], Sequence[str]]], *, fields: Sequence[str] = (), upper: bool = True
) -> dict[str, FieldScores]:
    """Multi-label counts per field over documents of `(predicted, gold)` `key=value` labels.

    Labels are compared as multisets per document (upper-cased by default, as Kleister's F1(UC)),
    and counted under their key. `fields` are reported even when no label has them.
    """
    counts: dict[str, list[int]] = {f: [0, 0, 0] for f in fields}
    for predicted, gold in pairs:
        p = Counter(x.upper() if upper else x for x in predicted)
        g = Counter(x.upper() if upper else x for x in gold)
        for label in p | g:
            c = counts.setdefault(label_key(label).lower(), [0, 0, 0])
            hit = min(p[label], g[label])
            c[0] += hit
            c[1] += p[label] - hit
            c[2] += g[label] - hit
    return {k: FieldScores(*v) for k, v in counts.items()}


def format_report(scores: Mapping[str, FieldScores], title: str | None = None) -> list[str]:
    """A table of per-field counts and P/R/F1, then the micro average; the last line is `micro_f1=x.xxxx`."""
    width = max([len("field"), len("micro"), *(len(k) for k in scores)])
    lines = [title] if title else []
    lines.append(f"{'field':<{width}}  {'tp':>5} {'fp':>5} {'fn':>5}  {'P':>6} {'R':>6} {'F1':>6}")

    def row(name: str, s: FieldScores) -> str:
        return f"{name:<{width}}  {s.tp:>5} {s.fp:>5} {s.fn:>5}  {s.precision:>6.3f} {s.recall:>6.3f} {s.f1:>6.3f}"

    lines += [row(name, s) for name, s in sorted(scores.items())]
    total = micro(scores)
    lines.append(row("micro", total))
    lines.append(f"micro_f1={total.f1:.4f}")
    return lines


def print_report(scores: Mapping[str, FieldScores], title: str | None = None, file: TextIO | None = None) -> list[str]:
    """Print `format_report` (to stdout unless `file` is given) and return its lines."""
    lines = format_report(scores, title)
    out = file if file is not None else sys.stdout
    for line in lines:
        print(line, file=out)
    return lines
