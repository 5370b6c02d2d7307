"""Fitting a calibration: a logistic regression (scikit-learn) from a value's signals to being right.

Fitted on one split of a gold-labelled set (`evaluation.runner.split_of`), never on the values it is
reported on. The result is a `workers.pipeline.calibration.Calibration`, written as a small JSON file
named by the combination it is valid for.

Which of the two methods (`workers.pipeline.calibration.METHODS`) is chosen from the fit split alone,
never from the values a calibration is reported on: the one whose 5-fold cross-validated log loss on
the fit split is lower (the simpler, Platt scaling, on a tie or when the rarer outcome has fewer values
than folds). A weight per signal can learn what the heuristic score misses (that one field is wrong
more often, say) but needs enough wrong values to do it: fitted on 6, it ranked worse than the score it
started from (ACI-Bench). Platt scaling fits two weights and keeps the score's ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from evaluation.outcomes import ValueOutcome
from workers.pipeline.calibration import METHODS, Calibration, CalibrationKey, method_features
from workers.pipeline.confidence import ValueSignals

MIN_VALUES = 12
"""Fewer values than this cannot say anything about a hit rate: refuse rather than fit noise."""
FOLDS = 5
"""Cross-validation folds that choose the method; fewer values of the rarer outcome than this: Platt."""


class CalibrationError(ValueError):
    """The outcomes cannot support a calibration (too few, or all of one kind)."""


def _signals(data: dict[str, Any]) -> ValueSignals:
    return ValueSignals(**data)


def choose_method(
    inputs: dict[str, list[list[float]]], y: list[int], regularization: float = 1.0
) -> tuple[str, dict[str, float]]:
    """The method (a key of `inputs`, its input vectors) with the lower cross-validated log loss on `y`,
    and each method's loss; Platt scaling on a tie or when a fold could lack the rarer outcome."""
    if min(sum(y), len(y) - sum(y)) < FOLDS:
        return "platt", {}
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    losses = {
        method: float(
            -cross_val_score(
                LogisticRegression(C=regularization, max_iter=2000), x, y, cv=folds, scoring="neg_log_loss"
            ).mean()
        )
        for method, x in inputs.items()
    }
    return min(losses, key=lambda m: (round(losses[m], 6), m != "platt")), losses


def fit_calibration(
    outcomes: Sequence[ValueOutcome],
    key: CalibrationKey,
    *,
    fitted_on: dict[str, Any],
    regularization: float = 1.0,
    method: str = "auto",
) -> Calibration:
    """A logistic regression over `method_features` of every outcome that has signals.

    `method` "auto" applies `choose_method` (cross-validation on these outcomes); "logistic" or "platt"
    force one."""
    if method != "auto" and method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; choose auto or one of {METHODS}")
    usable = [o for o in outcomes if o.signals is not None]
    if len(usable) < MIN_VALUES:
        raise CalibrationError(f"only {len(usable)} labelled values with signals; at least {MIN_VALUES} needed")
    if len({o.correct for o in usable}) < 2:
        raise CalibrationError("every labelled value is right (or every one wrong): nothing to calibrate against")
    fields = tuple(sorted({o.field for o in usable}))
    y = [int(o.correct) for o in usable]
    signals = [_signals(o.signals) for o in usable if o.signals is not None]
    inputs = {m: [method_features(m, s, fields) for s in signals] for m in METHODS}
    losses: dict[str, float] = {}
    chosen = method
    if method == "auto":
        chosen, losses = choose_method(inputs, y, regularization)
    model = LogisticRegression(C=regularization, max_iter=2000)
    model.fit(inputs[chosen], y)
    return Calibration(
        key=key,
        fields=fields,
        coef=tuple(float(c) for c in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        fitted_on={
            **fitted_on,
            "values": len(usable),
            "right": sum(y),
            "method": chosen,
            **({"cv_log_loss": {m: round(v, 4) for m, v in losses.items()}} if losses else {}),
        },
        method=chosen,
    )


def write_calibration(calibration: Calibration, directory: Path) -> Path:
    """Write the file (0600 in a 0700 folder, like the store's files) and return its path."""
    import json

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / calibration.key.filename()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(calibration.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
