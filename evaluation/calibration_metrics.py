"""How honest confidences are: expected calibration error, Brier score, AUROC, coverage at 95% precision.

- ECE (10 equal-width bins): the bins' gap between mean confidence and accuracy, weighted by size.
- Brier: mean squared distance between confidence and the 0/1 outcome.
- AUROC: how well confidence ranks right values above wrong ones (0.5: not at all).
- Coverage at 95% precision: the lowest threshold at which the values at or above it are at least 95%
  right, and the share of all values that clears it: what a team could accept without review.
- ECE if calibrated: the ECE that a perfectly calibrated confidence would still show on these values,
  drawn many times. ECE over a few hundred values is noisy and biased upwards, so an observed ECE reads
  only beside this floor: with about 100 values it is near 0.09, whatever the calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score


@dataclass(frozen=True)
class CalibrationReport:
    """The four figures over one set of values."""

    values: int
    accuracy: float
    ece: float
    brier: float
    auroc: float
    threshold_p95: float | None
    coverage_p95: float
    ece_if_calibrated: float = 0.0
    """Mean ECE a perfectly calibrated confidence would show on these values (`ece_if_calibrated`)."""
    ece_if_calibrated_p90: float = 0.0

    def line(self) -> str:
        """`ece=<x> brier=<y> auroc=<z> coverage_at_p95=<w>`."""
        return (
            f"ece={self.ece:.4f} brier={self.brier:.4f} auroc={self.auroc:.4f} coverage_at_p95={self.coverage_p95:.4f}"
        )


def _ece_rows(confidence: np.ndarray, outcomes: np.ndarray, bins: int) -> np.ndarray:
    """The ECE of each row of `outcomes` (0/1, one column per value) against the same `confidence`: one
    binning serves the observed outcomes and the floor's thousands of drawn ones."""
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = np.zeros(outcomes.shape[0])
    for b in range(bins):
        mask = which == b
        if mask.any():
            accuracy = outcomes[:, mask].astype(float).mean(axis=1)
            total += np.abs(accuracy - confidence[mask].mean()) * mask.sum() / confidence.size
    return total


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Σ_b |accuracy_b − confidence_b| · n_b / n over equal-width bins of [0, 1] (the last one closed)."""
    p = np.asarray(confidence, dtype=float)
    y = np.asarray(correct, dtype=float)
    if p.size == 0:
        return 0.0
    return float(_ece_rows(p, y[np.newaxis, :], bins)[0])


def ece_if_calibrated(
    confidence: Sequence[float], bins: int = 10, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """(mean, 90th percentile) of the ECE of outcomes drawn as Bernoulli(confidence), i.e. of a perfectly
    calibrated confidence with this very distribution; fixed seed, so the figure is repeatable."""
    p = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    if p.size == 0:
        return 0.0, 0.0
    outcomes = np.random.default_rng(seed).random((draws, p.size)) < p
    ece = _ece_rows(p, outcomes, bins)
    return float(ece.mean()), float(np.quantile(ece, 0.9))


def coverage_at_precision(
    confidence: Sequence[float], correct: Sequence[bool], target: float = 0.95
) -> tuple[float | None, float]:
    """(threshold, coverage): accept values with confidence >= threshold; the lowest threshold that keeps
    their precision at `target` or above, and the share of all values accepted (0 when none qualifies)."""
    p = np.asarray(confidence, dtype=float)
    y = np.asarray(correct, dtype=float)
    if p.size == 0:
        return None, 0.0
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    hits = np.cumsum(ys)
    best: tuple[float | None, float] = (None, 0.0)
    for i in range(p.size):
        # Values tied with the next one are accepted or refused together.
        if i + 1 < p.size and ps[i + 1] == ps[i]:
            continue
        if hits[i] / (i + 1) >= target:
            best = (float(ps[i]), (i + 1) / p.size)
    return best


def calibration_report(confidence: Sequence[float], correct: Sequence[bool]) -> CalibrationReport:
    """All four figures; AUROC is NaN when every value is right (or every one wrong)."""
    p = [min(max(float(c), 0.0), 1.0) for c in confidence]
    y = [bool(c) for c in correct]
    threshold, coverage = coverage_at_precision(p, y)
    auroc = float(roc_auc_score(y, p)) if 0 < sum(y) < len(y) else math.nan
    floor, floor_p90 = ece_if_calibrated(p)
    return CalibrationReport(
        values=len(p),
        accuracy=sum(y) / len(y) if y else 0.0,
        ece=expected_calibration_error(p, y),
        brier=float(brier_score_loss(y, p)) if p else 0.0,
        auroc=auroc,
        threshold_p95=threshold,
        coverage_p95=coverage,
        ece_if_calibrated=floor,
        ece_if_calibrated_p90=floor_p90,
    )
