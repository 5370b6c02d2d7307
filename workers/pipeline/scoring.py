"""Per-value confidence for a finished record: signals, the calibration that applies, low-confidence flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.documents.model import Document
from workers.pipeline.calibration import CalibrationKey, confidences, find_calibration
from workers.pipeline.confidence import ChunkAnswer, record_signals, rejected_signals
from workers.pipeline.grounding.record import Flag

LOW_CONFIDENCE = "low_confidence"


@dataclass(frozen=True)
class ScoredRecord:
    """What a record carries about how likely each value is to be right."""

    confidence: dict[str, float]
    rejected_confidence: dict[str, float]
    calibration: dict[str, Any]
    signals: dict[str, dict[str, Any]]
    rejected_signals: dict[str, dict[str, Any]]

    def flags(self, threshold: float) -> list[Flag]:
        """A `low_confidence` flag for every kept value below `threshold` (rejected ones are flagged already).

        Only under a calibration: a threshold on an uncalibrated score would promise a hit rate nobody
        measured; such records say `calibration.status == "uncalibrated"` instead.
        """
        if self.calibration.get("status") != "calibrated":
            return []
        return [
            Flag(path, LOW_CONFIDENCE, f"Confidence {p:.2f} is below the review threshold {threshold:.2f}.")
            for path, p in self.confidence.items()
            if p < threshold
        ]


def score_record(
    data: dict[str, Any],
    evidence: dict[str, list[dict[str, Any]]],
    rejected: dict[str, Any],
    answers: Sequence[ChunkAnswer],
    doc: Document,
    key: CalibrationKey,
    calibration_dir: Path | None = None,
) -> ScoredRecord:
    """Confidence for every stated value of `data` and of `rejected`, under the calibration for `key`."""
    pages = {p.number: p.ocr_confidence for p in doc.pages if p.ocr_confidence is not None}
    calibration = find_calibration(key, calibration_dir)
    kept = record_signals(data, evidence, answers, pages)
    dropped = rejected_signals(rejected, answers)
    scores, block = confidences(kept, calibration)
    rejected_scores, _ = confidences(dropped, calibration)
    return ScoredRecord(
        confidence=scores,
        rejected_confidence=rejected_scores,
        calibration={**block, "key": key.to_dict()},
        signals={p: s.to_dict() for p, s in kept.items()},
        rejected_signals={p: s.to_dict() for p, s in dropped.items()},
    )
