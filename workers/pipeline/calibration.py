"""Calibrations: small versioned files that map a value's signals to the probability that it is right.

A calibration is fitted on gold labels (`abstractor calibrate`, `evaluation.calibrate`) for one
combination of schema, model file and grammar backend, because what a log-probability means depends
on all three. It is a logistic regression, by one of two methods: over every signal (`features`), or a
Platt scaling of the heuristic score (two weights, the score's ranking kept), whichever
cross-validates better on the gold split it is fitted on (`evaluation.calibrate` chooses). Applying it
here is a dot product and a sigmoid, so the runtime needs no fitting library. Files ship in
`workers/pipeline/calibrations/` for the built-in schemas and the embedded model; a deployment's own
(`ABSTRACTOR_CALIBRATION_DIR`) take precedence. A combination without a file gets the heuristic score,
labelled uncalibrated: a ranking, not a promise.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.pipeline.confidence import ValueSignals, heuristic_score

FORMAT_VERSION = 1
SHIPPED = Path(__file__).with_name("calibrations")
MATCH_KINDS = ("exact", "normalized", "fuzzy", "not_found")
METHODS = ("logistic", "platt")
"""`logistic`: a weight per signal and per field; `platt`: a slope and an intercept on the heuristic score."""
_SCORE_CLIP = 1e-4
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]+")


@dataclass(frozen=True)
class CalibrationKey:
    """What a calibration is valid for."""

    schema: str
    model_sha256: str | None
    grammar_backend: str

    def filename(self) -> str:
        """A file name that names the combination (the digest shortened: it is checked in full on load)."""
        digest = (self.model_sha256 or "none")[:16]
        return _UNSAFE.sub("_", f"{self.schema}--{digest}--{self.grammar_backend}") + ".json"

    def to_dict(self) -> dict[str, Any]:
        """Plain form, written into the file and into every record that used it."""
        return {"schema": self.schema, "model_sha256": self.model_sha256, "grammar_backend": self.grammar_backend}


def base_features(signals: ValueSignals) -> dict[str, float]:
    """The field-independent features of one value (names are the calibration file's keys)."""
    lp_min = signals.lp_min if signals.lp_min is not None else 0.0
    lp_mean = signals.lp_mean if signals.lp_mean is not None else 0.0
    out = {
        "lp_min": lp_min,
        "lp_mean": lp_mean,
        "lp_missing": 1.0 if signals.lp_mean is None else 0.0,
        "agreement": signals.agreement,
        "multi_chunk": 1.0 if signals.chunks_stated > 1 else 0.0,
        "ocr_confidence": signals.ocr_confidence,
        "list_item": 1.0 if signals.list_item else 0.0,
    }
    for kind in MATCH_KINDS:
        out[f"match_{kind}"] = 1.0 if signals.match == kind else 0.0
    return out


def features(signals: ValueSignals, fields: tuple[str, ...]) -> list[float]:
    """The feature vector in a calibration's order: the base features, then one indicator per field."""
    base = base_features(signals)
    return [*base.values(), *(1.0 if signals.field == f else 0.0 for f in fields)]


def feature_names(fields: tuple[str, ...]) -> list[str]:
    """Names of `features`' entries, in order."""
    probe = ValueSignals("", False, None, None, "exact", 0.0, 0, 1.0)
    return [*base_features(probe), *(f"field={f}" for f in fields)]


def score_logit(signals: ValueSignals) -> float:
    """The heuristic score on the log-odds scale: Platt scaling's one input (clipped off 0 and 1)."""
    p = min(max(heuristic_score(signals), _SCORE_CLIP), 1.0 - _SCORE_CLIP)
    return math.log(p / (1.0 - p))


def method_features(method: str, signals: ValueSignals, fields: tuple[str, ...]) -> list[float]:
    """The input vector of a calibration of `method`."""
    return [score_logit(signals)] if method == "platt" else features(signals, fields)


def method_feature_names(method: str, fields: tuple[str, ...]) -> list[str]:
    """Names of `method_features`' entries, in order."""
    return ["score_logit"] if method == "platt" else feature_names(fields)


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic model over `method_features`, and what it was fitted on."""

    key: CalibrationKey
    fields: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    fitted_on: dict[str, Any]
    method: str = "logistic"

    @property
    def name(self) -> str:
        """How records name it."""
        return self.key.filename().removesuffix(".json")

    def probability(self, signals: ValueSignals) -> float:
        """P(the value is right | its signals)."""
        x = method_features(self.method, signals, self.fields)
        z = self.intercept + sum(w * v for w, v in zip(self.coef, x, strict=True))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {
            "format": FORMAT_VERSION,
            "key": self.key.to_dict(),
            "method": self.method,
            "fields": list(self.fields),
            "features": method_feature_names(self.method, self.fields),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        """Read a file's content; a file of another format, method or whose features disagree is refused.

        A file without `method` is a `logistic` one (the only method before Platt scaling was added)."""
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"calibration format {data.get('format')!r} is not {FORMAT_VERSION}")
        method = str(data.get("method", "logistic"))
        if method not in METHODS:
            raise ValueError(f"calibration method {method!r} is not one of {METHODS}")
        fields = tuple(str(f) for f in data["fields"])
        names = method_feature_names(method, fields)
        if list(data["features"]) != names or len(data["coef"]) != len(data["features"]):
            raise ValueError("calibration features do not match this version's signals")
        key = data["key"]
        return cls(
            key=CalibrationKey(str(key["schema"]), key.get("model_sha256"), str(key["grammar_backend"])),
            fields=fields,
            coef=tuple(float(c) for c in data["coef"]),
            intercept=float(data["intercept"]),
            fitted_on=dict(data.get("fitted_on") or {}),
            method=method,
        )


@functools.lru_cache(maxsize=64)
def _load(path: Path, mtime: float) -> Calibration:
    return Calibration.from_json(json.loads(path.read_text(encoding="utf-8")))


def find_calibration(key: CalibrationKey, directory: Path | None = None) -> Calibration | None:
    """The deployment's calibration for `key`, else the shipped one, else None (uncalibrated)."""
    name = key.filename()
    for folder in (directory, SHIPPED):
        if folder is None:
            continue
        path = folder / name
        if path.is_file():
            calibration = _load(path, path.stat().st_mtime)
            if calibration.key == key:
                return calibration
    return None


def confidences(
    signals: dict[str, ValueSignals], calibration: Calibration | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Each value's confidence and the record's `calibration` block (which model, or "uncalibrated")."""
    if calibration is None:
        return {path: heuristic_score(s) for path, s in signals.items()}, {"status": "uncalibrated"}
    scores = {path: round(calibration.probability(s), 4) for path, s in signals.items()}
    return scores, {"status": "calibrated", "name": calibration.name, "fitted_on": calibration.fitted_on}
