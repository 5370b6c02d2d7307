"""Scoring a run: field F1 against gold, and how honest the values' confidences are.

Confidences are recomputed from each value's stored signals with the calibration that applies now, so a
predictions file made before `abstractor calibrate` is scored under the new calibration without running
the model again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from evaluation.aci import clinical_record_to_gold_shape, score_aci
from evaluation.calibration_metrics import CalibrationReport, calibration_report
from evaluation.datasets import DatasetKind
from evaluation.kleister import nda_record_to_labels, score_kleister
from evaluation.outcomes import ValueOutcome, value_outcomes
from evaluation.reviewed import score_reviewed
from evaluation.runner import Prediction
from evaluation.scoring import FieldScores
from workers.pipeline.calibration import Calibration, confidences
from workers.pipeline.confidence import ValueSignals


@dataclass(frozen=True)
class RunScores:
    """Field scores, the per-value outcomes, and the calibration figures per field and overall."""

    fields: dict[str, FieldScores]
    outcomes: list[ValueOutcome]
    calibration: dict[str, CalibrationReport]
    calibration_status: str


def field_scores(kind: DatasetKind, predictions: Sequence[Prediction]) -> dict[str, FieldScores]:
    """Per-field counts (a failed document predicts nothing)."""
    if kind == "kleister":
        return score_kleister((nda_record_to_labels(p.record["data"]) if p.record else [], p.gold) for p in predictions)
    if kind == "reviewed":
        fields = sorted({f for p in predictions for f in p.gold})
        return score_reviewed((((p.record["data"] if p.record else {}), p.gold) for p in predictions), fields)
    empty = dict.fromkeys(("patient_age", "patient_sex", "chief_complaint"))
    return score_aci(
        (clinical_record_to_gold_shape(p.record["data"]) if p.record else empty, p.gold) for p in predictions
    )


def rescored(outcomes: Sequence[ValueOutcome], calibration: Calibration | None) -> list[ValueOutcome]:
    """The outcomes with confidences recomputed from their signals (kept as they were where none)."""
    out = []
    for o in outcomes:
        if o.signals is None:
            out.append(o)
            continue
        scores, _ = confidences({o.path: ValueSignals(**o.signals)}, calibration)
        out.append(replace(o, confidence=scores[o.path]))
    return out


def score_run(kind: DatasetKind, predictions: Sequence[Prediction], calibration: Calibration | None) -> RunScores:
    """Everything `abstractor eval` prints."""
    outcomes: list[ValueOutcome] = []
    for p in predictions:
        if p.record is not None:
            outcomes += value_outcomes(kind, p.name, p.record, p.gold)
    outcomes = [o for o in rescored(outcomes, calibration) if o.confidence is not None]
    groups: dict[str, list[ValueOutcome]] = {"overall": outcomes}
    for o in outcomes:
        groups.setdefault(o.field, []).append(o)
    reports = {
        name: calibration_report([o.confidence or 0.0 for o in group], [o.correct for o in group])
        for name, group in groups.items()
    }
    return RunScores(
        fields=field_scores(kind, predictions),
        outcomes=outcomes,
        calibration=reports,
        calibration_status="calibrated" if calibration is not None else "uncalibrated",
    )


def calibration_lines(scores: RunScores) -> list[str]:
    """A table of the calibration figures per field, then the overall line `ece=… brier=… auroc=… coverage_at_p95=…`."""
    lines = [f"confidence ({scores.calibration_status}):"]
    lines.append(
        f"{'field':<16} {'values':>6} {'acc':>6} {'ECE':>6} {'floor':>6} {'Brier':>6} {'AUROC':>6} {'t@p95':>6} "
        f"{'cov@p95':>7}"
    )
    for name, r in sorted(scores.calibration.items(), key=lambda kv: (kv[0] == "overall", kv[0])):
        auroc = "n/a" if math.isnan(r.auroc) else f"{r.auroc:.3f}"
        threshold = "n/a" if r.threshold_p95 is None else f"{r.threshold_p95:.3f}"
        cells = (
            r.values,
            f"{r.accuracy:.3f}",
            f"{r.ece:.3f}",
            f"{r.ece_if_calibrated:.3f}",
            f"{r.brier:.3f}",
            auroc,
            threshold,
            f"{r.coverage_p95:.3f}",
        )
        lines.append(f"{name:<16} " + " ".join(f"{c:>7}" for c in cells))
    overall = scores.calibration["overall"]
    lines.append(
        f"floor: the ECE a perfectly calibrated confidence would show on the same values (mean of 2000 draws; "
        f"overall 90 % below {overall.ece_if_calibrated_p90:.3f}): an ECE near its floor is as good as "
        f"{overall.values} values can show"
    )
    lines.append(overall.line())
    return lines


def plot_run(scores: RunScores, path: Path, title: str) -> None:
    """Reliability diagram and precision–coverage curve, side by side, as a PNG (matplotlib, no display)."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font-cache notices are no run's business
    import matplotlib.pyplot as plt
    import numpy as np

    p = np.asarray([o.confidence or 0.0 for o in scores.outcomes], dtype=float)
    y = np.asarray([o.correct for o in scores.outcomes], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    which = np.minimum((p * 10).astype(int), 9)
    centers, accuracy, counts = [], [], []
    for b in range(10):
        mask = which == b
        if mask.any():
            centers.append(p[mask].mean())
            accuracy.append(y[mask].mean())
            counts.append(int(mask.sum()))
    left.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    left.plot(centers, accuracy, "o-", label="observed")
    for x, a, n in zip(centers, accuracy, counts, strict=True):
        left.annotate(str(n), (x, a), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    left.set(xlabel="confidence", ylabel="share right", xlim=(0, 1), ylim=(0, 1.05), title="reliability")
    left.legend(loc="lower right")
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(y[order])
    accepted = np.arange(1, p.size + 1)
    right.plot(accepted / max(p.size, 1), hits / accepted)
    right.axhline(0.95, linestyle="--", color="grey", label="95% precision")
    overall = scores.calibration["overall"]
    right.axvline(overall.coverage_p95, linestyle=":", color="red", label=f"coverage {overall.coverage_p95:.2f}")
    right.set(xlabel="share of values accepted (highest confidence first)", ylabel="precision", ylim=(0, 1.05))
    right.set_title("precision vs coverage")
    right.legend(loc="lower left")
    fig.suptitle(f"{title} — {overall.line()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
