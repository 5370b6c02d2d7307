"""The peers' table: one summary row per system and dataset, scored by our scorers, with the ratios to
Abstractor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.peer_types import Evaluation, Item, Outcome


@dataclass(frozen=True)
class Summary:
    """One table row: a system on a dataset."""

    dataset: str
    system: str
    documents: int
    failures: Mapping[str, int]
    micro_f1: float
    field_f1: Mapping[str, float]
    pages: int
    seconds: float
    prompt_tokens: int | None
    completion_tokens: int | None
    truncated: int = 0
    text_share: float | None = None
    """Share of the documents' characters the model saw (for a system that truncates)."""
    requests: int | None = None
    cut_answers: int | None = None
    load: float | None = None
    """Mean 1-minute load average over the row's documents."""

    @property
    def seconds_per_page(self) -> float:
        """Seconds per page (per note for ACI, whose notes are one page)."""
        return self.seconds / self.pages if self.pages else float("nan")


def _sum_known(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _mean_known(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _text_share(outcomes: Sequence[Outcome]) -> float | None:
    sent = [(o.chars_sent, o.chars) for o in outcomes if o.chars_sent is not None]
    total = sum(chars for _, chars in sent)
    return sum(n for n, _ in sent) / total if sent and total else None


def notes(summary: Summary) -> str:
    """What a reader needs to weigh a row: truncated documents, answers cut at the token budget."""
    parts = []
    if summary.truncated:
        share = f", {summary.text_share:.0%} of the text seen" if summary.text_share is not None else ""
        parts.append(f"truncated {summary.truncated}/{summary.documents}{share}")
    if summary.cut_answers and summary.requests:
        parts.append(f"{summary.cut_answers}/{summary.requests} answers hit max_tokens")
    if summary.load is not None:
        parts.append(f"load {summary.load:.1f}")
    return "; ".join(parts)


def summarize(ev: Evaluation, items: Sequence[Item], outcomes: Sequence[Outcome]) -> Summary:
    """Score one system's outcomes on one dataset with our scorers."""
    gold = {item.name: item.gold for item in items}
    dataset = items[0].dataset
    pairs: list[tuple[Any, Any]] = []
    for o in outcomes:
        if dataset == "kleister":
            pairs.append((ev.nda_record_to_labels(o.record) if o.record else [], gold[o.name]))
        else:
            empty = {"patient_age": None, "patient_sex": None, "chief_complaint": None}
            pairs.append((ev.clinical_record_to_gold_shape(o.record) if o.record else empty, gold[o.name]))
    scores = ev.score_kleister(pairs) if dataset == "kleister" else ev.score_aci(pairs)
    # A failed document's pages still count: its seconds were spent, and it scored nothing.
    pages = sum(o.pages or 1 for o in outcomes)
    return Summary(
        dataset=dataset,
        system=outcomes[0].system,
        documents=len(outcomes),
        failures=Counter(o.error for o in outcomes if o.error),
        micro_f1=ev.micro(scores).f1,
        field_f1={name: s.f1 for name, s in sorted(scores.items())},
        pages=pages,
        seconds=sum(o.seconds for o in outcomes),
        prompt_tokens=_sum_known([o.prompt_tokens for o in outcomes]),
        completion_tokens=_sum_known([o.completion_tokens for o in outcomes]),
        truncated=sum(o.truncated for o in outcomes),
        text_share=_text_share(outcomes),
        requests=_sum_known([o.requests for o in outcomes]),
        cut_answers=_sum_known([o.cut_answers for o in outcomes]),
        load=_mean_known([o.load for o in outcomes]),
    )


def _ratio(value: float, reference: float | None) -> str:
    if reference is None or reference == 0 or value != value:
        return "n/a"
    return f"{value / reference:.2f}"


def format_tokens(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _failures(summary: Summary) -> str:
    total = sum(summary.failures.values())
    if not total:
        return "0"
    detail = ", ".join(f"{code} {n}" for code, n in sorted(summary.failures.items()))
    return f"{total} ({detail})"


TABLE_COLUMNS = (
    "dataset",
    "system",
    "docs",
    "failures",
    "micro-F1",
    "per-field F1",
    "s/page",
    "prompt tok",
    "gen tok",
    "F1 ÷ Abstractor",
    "s/page ÷ Abstractor",
    "notes",
)


def format_table(summaries: Sequence[Summary]) -> list[str]:
    """One Markdown table (a README can take it as is): a row per dataset and system, ratios to Abstractor."""
    reference = {s.dataset: s for s in summaries if s.system == "abstractor"}
    rows = []
    for s in summaries:
        ref = reference.get(s.dataset)
        fields = ", ".join(f"{name} {f1:.3f}" for name, f1 in s.field_f1.items())
        rows.append(
            (
                s.dataset,
                s.system,
                str(s.documents),
                _failures(s),
                f"{s.micro_f1:.3f}",
                fields,
                f"{s.seconds_per_page:.2f}",
                format_tokens(s.prompt_tokens),
                format_tokens(s.completion_tokens),
                _ratio(s.micro_f1, ref.micro_f1 if ref else None),
                _ratio(s.seconds_per_page, ref.seconds_per_page if ref else None),
                notes(s),
            )
        )
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(TABLE_COLUMNS)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(TABLE_COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]


def summary_lines(summaries: Sequence[Summary]) -> list[str]:
    """The lines a README quotes: `peers <dataset> <system> micro_f1=<x> seconds_per_page=<y>`."""
    return [
        f"peers {s.dataset} {s.system} micro_f1={s.micro_f1:.4f} seconds_per_page={s.seconds_per_page:.2f}"
        for s in summaries
    ]
