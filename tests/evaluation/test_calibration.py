"""Calibration figures, outcomes per value, fitting, and resumable predictions files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluation.calibrate import CalibrationError, choose_method, fit_calibration
from evaluation.calibration_metrics import (
    calibration_report,
    coverage_at_precision,
    ece_if_calibrated,
    expected_calibration_error,
)
from evaluation.outcomes import ValueOutcome, value_outcomes
from evaluation.runner import PredictionsError, read_predictions, run_predictions, split_of
from workers.errors import BadInputError
from workers.pipeline.calibration import Calibration, CalibrationKey
from workers.pipeline.confidence import ValueSignals, heuristic_score


def test_ece_is_zero_when_confidence_is_the_hit_rate_and_large_when_it_lies() -> None:
    honest = [0.75] * 4
    assert expected_calibration_error(honest, [True, True, True, False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.95] * 10, [False] * 10) == pytest.approx(0.95)
    # Two bins, each off by 0.1, weighted by their sizes.
    assert expected_calibration_error([0.25, 0.25, 0.85, 0.85], [False, False, True, True]) == pytest.approx(
        0.5 * 0.25 + 0.5 * 0.15
    )


def test_coverage_at_95_percent_precision_accepts_the_confident_right_values_only() -> None:
    confidence = [0.99, 0.98, 0.97, 0.96, 0.60, 0.50]
    correct = [True, True, True, True, False, True]
    assert coverage_at_precision(confidence, correct) == (0.96, 4 / 6)
    # A wrong value at the top: no threshold reaches 95%, nothing may be accepted unreviewed.
    assert coverage_at_precision([0.9, 0.8], [False, True]) == (None, 0.0)
    # Ties are accepted or refused together.
    assert coverage_at_precision([0.9, 0.9, 0.1], [True, False, True]) == (None, 0.0)


def test_the_report_line_and_auroc() -> None:
    report = calibration_report([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert report.auroc == 1.0 and report.values == 4 and report.accuracy == 0.5
    assert report.line().startswith("ece=") and "coverage_at_p95=0.5000" in report.line()
    assert math.isnan(calibration_report([0.9], [True]).auroc)


def test_the_ece_floor_is_what_a_perfect_calibration_shows_on_this_many_values() -> None:
    # Certain confidences leave nothing to chance: a perfect calibration shows no error at all.
    assert ece_if_calibrated([0.0, 1.0] * 50) == (0.0, 0.0)
    # About 100 values at 0.7: sampling alone puts the ECE well above 0.05 (the binomial spread is 0.046);
    # 20 times as many values shrink it about sqrt(20)-fold.
    few, few_p90 = ece_if_calibrated([0.7] * 100)
    many, _ = ece_if_calibrated([0.7] * 2000)
    assert 0.03 < few < few_p90 < 0.12
    assert many < few / 3
    assert ece_if_calibrated([0.7] * 100) == (few, few_p90)  # a fixed seed: the printed figure repeats
    # Outcomes drawn from the confidences themselves land near the floor, not near zero.
    rng = np.random.default_rng(7)
    confidence = rng.uniform(0.3, 1.0, 100)
    observed = [expected_calibration_error(confidence, rng.random(100) < confidence) for _ in range(200)]
    assert abs(float(np.mean(observed)) - ece_if_calibrated(confidence)[0]) < 0.01
    report = calibration_report(confidence, rng.random(100) < confidence)
    assert report.ece_if_calibrated == ece_if_calibrated(confidence)[0]


def test_kleister_outcomes_judge_each_value_against_the_gold_labels_once() -> None:
    data = {"parties": ["NIKE, Inc.", "Nike Inc", "Acme"], "effective_date": "2001-04-18", "jurisdiction": "Oregon"}
    gold = ["party=Nike_Inc.", "effective_date=2001-04-18", "jurisdiction=Washington"]
    record = {"data": data, "confidence": {"parties.0": 0.9}, "signals": {"values": {}}}
    out = {o.path: o.correct for o in value_outcomes("kleister", "d", record, gold)}
    # The second spelling of Nike matches a gold label already used: a duplicate is wrong.
    assert out == {
        "effective_date": True,
        "jurisdiction": False,
        "parties.0": True,
        "parties.1": False,
        "parties.2": False,
    }


def test_aci_outcomes_score_only_the_labelled_fields() -> None:
    data = {"patient_age": 58, "patient_sex": "Male", "chief_complaint": "cough", "diagnoses": ["bronchitis"]}
    gold = {"patient_age": 58, "patient_sex": "female", "chief_complaint": None}
    out = {o.path: o.correct for o in value_outcomes("aci", "n", {"data": data}, gold)}
    assert out == {"patient_age": True, "patient_sex": False, "chief_complaint": False}


def _outcome(i: int, correct: bool, lp: float) -> ValueOutcome:
    signals = ValueSignals("parties" if i % 2 else "term", bool(i % 2), lp, lp, "exact", 1.0, 1, 1.0)
    return ValueOutcome(f"d{i}", "term", signals.field, correct, None, signals.to_dict())


def test_fitting_learns_that_low_log_probabilities_mean_wrong_values() -> None:
    outcomes = [_outcome(i, correct=i % 3 != 0, lp=-0.05 if i % 3 else -3.0) for i in range(60)]
    key = CalibrationKey("nda@1", "ab" * 32, "llguidance")
    sure = ValueSignals("term", False, -0.05, -0.05, "exact", 1.0, 1, 1.0)
    unsure = ValueSignals("term", False, -3.0, -3.0, "exact", 1.0, 1, 1.0)
    for method in ("logistic", "platt"):
        calibration = fit_calibration(outcomes, key, fitted_on={"dataset": "synthetic"}, method=method)
        assert calibration.method == method
        assert calibration.probability(sure) > 0.8 > 0.2 > calibration.probability(unsure)
        assert calibration.fitted_on["values"] == 60 and calibration.fitted_on["right"] == 40
    with pytest.raises(CalibrationError, match="at least"):
        fit_calibration(outcomes[:5], key, fitted_on={})
    with pytest.raises(CalibrationError, match="every labelled value"):
        fit_calibration([_outcome(i, True, -0.1) for i in range(30)], key, fitted_on={})


def test_the_method_is_chosen_by_cross_validation_on_the_fit_values_and_platt_keeps_the_ranking() -> None:
    key = CalibrationKey("nda@1", "ab" * 32, "llguidance")
    # One field is wrong whatever its log-probabilities say: only a weight per field can learn that.
    by_field = [
        ValueOutcome(f"d{i}", "p", field, field == "parties", None, signals.to_dict())
        for i in range(80)
        for field in ["parties" if i % 2 else "term"]
        for signals in [ValueSignals(field, False, -0.1 - (i % 5) / 50, -0.1, "exact", 1.0, 1, 1.0)]
    ]
    learned = fit_calibration(by_field, key, fitted_on={})
    assert learned.method == "logistic" and set(learned.fitted_on["cv_log_loss"]) == {"logistic", "platt"}
    assert learned.fitted_on["cv_log_loss"]["logistic"] < learned.fitted_on["cv_log_loss"]["platt"]
    # Fewer wrong values than folds: nothing to validate a weight per signal with.
    few = [_outcome(i, correct=i >= 4, lp=-0.05 if i >= 4 else -3.0) for i in range(60)]
    assert fit_calibration(few, key, fitted_on={}).method == "platt"
    assert choose_method({"platt": [[0.0]] * 10, "logistic": [[0.0]] * 10}, [1] * 6 + [0] * 4) == ("platt", {})
    # Platt scaling keeps the heuristic score's order on any values.
    outcomes = [_outcome(i, correct=i % 3 != 0, lp=-0.05 - (i % 7) / 10 if i % 3 else -3.0) for i in range(60)]
    calibration = fit_calibration(outcomes, key, fitted_on={"dataset": "synthetic"}, method="platt")
    assert calibration.method == "platt" and calibration.fitted_on["method"] == "platt"
    probes = [
        ValueSignals("term", False, lp, lp, m, 1.0, 1, 1.0) for lp in (-0.01, -0.5, -2.0) for m in ("exact", "fuzzy")
    ]
    by_score = sorted(probes, key=heuristic_score)
    assert [calibration.probability(s) for s in by_score] == sorted(calibration.probability(s) for s in by_score)
    assert len({round(calibration.probability(s), 6) for s in probes}) == len({heuristic_score(s) for s in probes})
    # The file says which method it holds and reads back to the same probabilities.
    data = calibration.to_json()
    assert data["method"] == "platt" and data["features"] == ["score_logit"] and len(data["coef"]) == 1
    again = Calibration.from_json(json.loads(json.dumps(data)))
    assert [again.probability(s) for s in probes] == [calibration.probability(s) for s in probes]
    with pytest.raises(ValueError, match="method"):
        Calibration.from_json({**data, "method": "isotonic"})
    with pytest.raises(ValueError, match="features"):
        Calibration.from_json({**data, "method": "logistic"})  # one weight cannot be a per-signal model
    with pytest.raises(CalibrationError, match="unknown calibration method"):
        fit_calibration(outcomes, key, fitted_on={}, method="isotonic")


def test_the_split_is_fixed_by_name_and_cuts_a_set_roughly_in_half() -> None:
    names = [f"doc{i}.pdf" for i in range(200)]
    fit = [n for n in names if split_of(n) == "fit"]
    assert 70 < len(fit) < 130
    assert [split_of(n) for n in names] == [split_of(n) for n in names]


def test_a_cut_run_resumes_only_the_missing_documents_and_drops_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    run = {"schema": "nda@1", "model": "m", "backend": "b"}
    with path.open("w") as f:
        f.write(json.dumps({"name": "a", "gold": [], "run": run, "data": {"x": 1}}) + "\n")
        f.write('{"name": "b", "gold": [], "run"')  # the process was killed while writing b
    ran: list[str] = []

    def extract(source: Any) -> dict[str, Any]:
        ran.append(source)
        if source == "c":
            raise BadInputError("unreadable", code="invalid_pdf")
        return {"data": {"x": source}}

    items = [("a", "a", []), ("b", "b", []), ("c", "c", [])]
    results = list(run_predictions(items, extract, path=path, expect=run))
    assert ran == ["b", "c"]
    assert [fresh for _, fresh in results] == [False, True, True]
    assert results[2][0].record is None and results[2][0].line["error"]["code"] == "invalid_pdf"
    assert set(read_predictions(path)) == {"a", "b", "c"}
    assert list(run_predictions(items, extract, path=path, expect=run)) and ran == ["b", "c"]  # nothing new ran
    with pytest.raises(PredictionsError, match="another run"):
        list(run_predictions(items, extract, path=path, expect={**run, "model": "other"}))


def test_shipped_calibrations_load_for_the_embedded_model_and_were_fitted_on_the_fit_half_only() -> None:
    """Each built-in schema ships a calibration for the embedded model and the default grammar backend."""
    from schemas.registry import get_schema
    from workers.engines.model_files import QWEN25_CODER_05B
    from workers.pipeline.calibration import SHIPPED, find_calibration

    files = sorted(SHIPPED.glob("*.json"))
    assert files, "no calibration is shipped"
    for name in ("nda", "clinical_note"):
        key = CalibrationKey(get_schema(name).ref, QWEN25_CODER_05B.sha256, "llguidance")
        calibration = find_calibration(key)
        assert calibration is not None, key
        fitted = calibration.fitted_on
        assert fitted["split"] == "fit"  # never the half its figures are reported on
        assert fitted["values"] >= 50 and 0 < fitted["right"] < fitted["values"]
    for path in files:  # every shipped file is named for the combination it holds
        data = json.loads(path.read_text(encoding="utf-8"))
        key = CalibrationKey(data["key"]["schema"], data["key"]["model_sha256"], data["key"]["grammar_backend"])
        assert key.filename() == path.name
