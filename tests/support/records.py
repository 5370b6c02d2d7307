"""Checks every record must pass, whichever way it was produced (CLI, API, batch export)."""

from __future__ import annotations

from typing import Any

from workers.pipeline.grounding.record import iter_leaves
from workers.pipeline.grounding.variants import as_text


def assert_confidence_for_every_stated_value(record: dict[str, Any]) -> None:
    """A confidence in [0, 1] for exactly the stated values of `data`, and a calibration block saying which."""
    stated = {path for path, value in iter_leaves(record["data"]) if as_text(value) is not None}
    confidence = record["confidence"]
    assert set(confidence) == stated, (sorted(confidence), sorted(stated))
    assert all(isinstance(p, float | int) and 0.0 <= p <= 1.0 for p in confidence.values())
    assert record["calibration"]["status"] in ("calibrated", "uncalibrated")
