"""Per-value confidence: signals aligned to the tokens that spelled each value, calibrations applied or not.

An engine that answers with fixed text and per-token log-probabilities (behind the real protocol) makes
the signals exact to check; the real engines' log-probabilities are checked in the engine tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from schemas.registry import get_schema
from tests.workers.pipeline.test_run import document
from workers.engines.protocol import EngineInfo, GenerationRequest, GenerationResult, token_spans
from workers.pipeline.calibration import Calibration, CalibrationKey, feature_names, find_calibration
from workers.pipeline.confidence import ChunkAnswer, ValueSignals, record_signals
from workers.pipeline.run import PipelineOptions, extract_document

SHA = "ab" * 32


class LogprobEngine:
    """Answers with one JSON text per request, each token a character, each with the log-probability the
    map gives the value it lies in (1 for the rest): known signals, nothing else."""

    def __init__(self, answer: dict[str, object], logprobs: dict[str, float]) -> None:
        self.text = json.dumps(answer, separators=(",", ":"))
        self.logprobs = logprobs
        self.info = EngineInfo("scripted", "scripted", SHA, "llguidance")

    @property
    def context_tokens(self) -> int:
        return 4096

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        values = [0.0] * len(self.text)
        for needle, lp in self.logprobs.items():
            at = self.text.index(json.dumps(needle))
            for i in range(at + 1, at + len(json.dumps(needle)) - 1):  # the characters, not the quotes
                values[i] = lp
        tokens = token_spans([c.encode() for c in self.text], values, self.text)
        return [GenerationResult(self.text, "stop", 100, len(tokens), 0.01, tokens=tokens) for _ in requests]


ANSWER = {
    "parties": ["NIKE, Inc.", "Reebok International"],
    "effective_date": "2001-04-18",
    "jurisdiction": "Oregon",
    "term": None,
}


def _extract(engine: LogprobEngine, **options: object) -> dict[str, object]:
    return extract_document(document(), get_schema("nda"), engine, PipelineOptions(**options))  # type: ignore[arg-type]


def test_every_stated_value_gets_a_confidence_and_uncalibrated_is_labelled_so() -> None:
    record = _extract(LogprobEngine(ANSWER, {"Oregon": -0.05}))
    confidence = record["confidence"]
    assert isinstance(confidence, dict)
    # Stated and found values are scored; the not-found party was moved out and is scored there.
    assert set(confidence) == {"parties.0", "effective_date", "jurisdiction"}
    assert set(record["rejected_confidence"]) == {"parties.1"}  # type: ignore[arg-type]
    assert all(0.0 <= p <= 1.0 for p in [*confidence.values(), *record["rejected_confidence"].values()])  # type: ignore[union-attr]
    assert record["calibration"]["status"] == "uncalibrated"  # type: ignore[index]
    # No calibration, no review threshold: nothing is flagged low_confidence on an uncalibrated score.
    assert not [f for f in record["flags"] if f["code"] == "low_confidence"]  # type: ignore[union-attr]


def test_an_exact_value_ranks_above_one_not_found_in_the_source() -> None:
    record = _extract(LogprobEngine(ANSWER, {}))
    exact = record["confidence"]["parties.0"]  # type: ignore[index]
    missing = record["rejected_confidence"]["parties.1"]  # type: ignore[index]
    assert exact > missing
    signals = record["signals"]  # type: ignore[index]
    assert signals["values"]["parties.0"]["match"] == "exact"
    assert signals["rejected"]["parties.1"]["match"] == "not_found"


def test_the_tokens_of_a_value_decide_its_log_probability_signals() -> None:
    record = _extract(LogprobEngine(ANSWER, {"Oregon": -2.0}), reject_ungrounded=False)
    signals = record["signals"]["values"]  # type: ignore[index]
    # "Oregon" plus its closing quote: six characters at -2, the quote at 0 (a choice too).
    assert signals["jurisdiction"]["lp_min"] == -2.0
    assert signals["jurisdiction"]["lp_mean"] == pytest.approx(-2.0 * 6 / 7)
    assert signals["effective_date"]["lp_min"] == 0.0
    assert record["confidence"]["jurisdiction"] < record["confidence"]["effective_date"]  # type: ignore[index]


def test_agreement_counts_the_chunks_that_stated_the_same_value() -> None:
    a = ChunkAnswer('{"x":"A"}', (), {"x": "A"})
    b = ChunkAnswer('{"x":"a"}', (), {"x": "a"})
    c = ChunkAnswer('{"x":"B"}', (), {"x": "B"})
    d = ChunkAnswer('{"x":null}', (), {"x": None})
    signals = record_signals({"x": "A"}, {"x": [{"page": 1, "match": "normalized"}]}, [a, b, c, d], {1: 0.7})
    s = signals["x"]
    assert (s.agreement, s.chunks_stated, s.match, s.ocr_confidence) == (2 / 3, 3, "normalized", 0.7)
    assert s.lp_mean is None  # no tokens given: the signal is missing, not zero


def _calibration(key: CalibrationKey, lp_weight: float) -> Calibration:
    names = feature_names(("effective_date", "jurisdiction", "parties"))
    coef = [lp_weight if n in ("lp_min", "lp_mean") else 0.0 for n in names]
    return Calibration(key, ("effective_date", "jurisdiction", "parties"), tuple(coef), 1.0, {"dataset": "test"})


def test_a_calibration_for_the_combination_is_found_applied_and_named(tmp_path: Path) -> None:
    key = CalibrationKey("nda@1", SHA, "llguidance")
    calibration = _calibration(key, 2.0)
    (tmp_path / key.filename()).write_text(json.dumps(calibration.to_json()))
    assert find_calibration(key, tmp_path) == calibration
    assert find_calibration(CalibrationKey("nda@1", "cd" * 32, "llguidance"), tmp_path) is None
    record = _extract(LogprobEngine(ANSWER, {"Oregon": -1.5}), calibration_dir=tmp_path)
    block = record["calibration"]
    assert block["status"] == "calibrated" and block["name"] == calibration.name  # type: ignore[index]
    signals = ValueSignals(**record["signals"]["values"]["jurisdiction"])  # type: ignore[index]
    assert record["confidence"]["jurisdiction"] == pytest.approx(calibration.probability(signals), abs=1e-4)  # type: ignore[index]
    # Below the review threshold under a calibration: flagged for a reviewer.
    low = _extract(LogprobEngine(ANSWER, {"Oregon": -9.0}), calibration_dir=tmp_path, low_confidence_threshold=0.9)
    flagged = {f["path"] for f in low["flags"] if f["code"] == "low_confidence"}  # type: ignore[union-attr]
    assert "jurisdiction" in flagged and flagged <= set(low["confidence"])  # type: ignore[arg-type]
    assert all(low["confidence"][p] < 0.9 for p in flagged)  # type: ignore[index]


def test_a_calibration_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    key = CalibrationKey("nda@1", SHA, "llguidance")
    data = _calibration(key, 1.0).to_json()
    data["features"] = data["features"][:-1]
    (tmp_path / key.filename()).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="features"):
        find_calibration(key, tmp_path)
