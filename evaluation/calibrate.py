"""Fitting a calibration: a logistic regression (scikit-learn) from a value's signals to being right.

Fitted on one split of a gold-labelled set (`evaluation.runner.split_of`), never on the values it is
reported on. The result is a `workers.pipeline.calibration.Calibration`, written as a small JSON file
named by the combination it is valid for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.linear_model import LogisticRegression

from evaluation.outcomes import ValueOutcome
from workers.pipeline.calibration import Calibration, CalibrationKey, features
from workers.pipeline.confidence import ValueSignals

MIN_VALUES = 12
"""Fewer values than this cannot say anything about a hit rate: refuse rather than fit noise."""


class CalibrationError(ValueError):
    """The outcomes cannot support a calibration (too few, or all of one kind)."""


def _signals(data: dict[str, Any]) -> ValueSignals:
    return ValueSignals(**data)


def fit_calibration(
    outcomes: Sequence[ValueOutcome], key: CalibrationKey, *, fitted_on: dict[str, Any], regularization: float = 1.0
) -> Calibration:
    """A logistic regression over `features` of every outcome that has signals."""
    usable = [o for o in outcomes if o.signals is not None]
    if len(usable) < MIN_VALUES:
        raise CalibrationError(f"only {len(usable)} labelled values with signals; at least {MIN_VALUES} needed")
    if len({o.correct for o in usable}) < 2:
        raise CalibrationError("every labelled value is right (or every one wrong): nothing to calibrate against")
    fields = tuple(sorted({o.field for o in usable}))
    x = [features(_signals(o.signals), fields) for o in usable if o.signals is not None]
    y = [int(o.correct) for o in usable]
    model = LogisticRegression(C=regularization, max_iter=2000)
    model.fit(x, y)
    return Calibration(
        key=key,
        fields=fields,
        coef=tuple(float(c) for c in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        fitted_on={**fitted_on, "values": len(usable), "right": sum(y)},
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
