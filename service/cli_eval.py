"""`abstractor eval` and `abstractor calibrate`: the model on gold-labelled sets, resumable, split.

Both go through one predictions file per run (`evaluation.runner`): the documents already in it are
not extracted again. `calibrate` fits on the `fit` half of a set; `eval` reports on whichever half is
asked for (`--split report` for figures calibration never saw).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from schemas.registry import SchemaSpec
from service.cli_common import fail, progress_bar, schema_spec
from service.config import Settings, get_settings
from service.jobs.identity import model_ref
from service.logs import configure_logging
from service.runtime import engine_from, limits_from, options_from
from workers.documents import read_document
from workers.engines.protocol import Engine
from workers.errors import WorkerError
from workers.pipeline.calibration import CalibrationKey, find_calibration
from workers.pipeline.run import extract_document

DirectoryArg = Annotated[
    Path, typer.Argument(help="Kleister-NDA folder (labels.tsv), ACI-Bench folder, or an `export-gold` folder.")
]
SchemaOpt = Annotated[str, typer.Option("--schema", "-s", help="nda for Kleister-NDA, clinical_note for ACI.")]
LimitOpt = Annotated[int | None, typer.Option(help="Only the first N documents (after the split).")]
PredictionsOpt = Annotated[
    Path | None,
    typer.Option(help="One JSON line per document (record or error); documents already in it are not run again."),
]


def _items(directory: Path, kind: str, split: str, limit: int | None) -> list[tuple[str, Any, Any]]:
    """(name, source, gold) triples of the split: a PDF path for Kleister-NDA, note text for ACI-Bench."""
    from evaluation import load_aci, load_kleister
    from evaluation.reviewed import load_reviewed
    from evaluation.runner import in_split

    items: list[tuple[str, Any, Any]]
    if kind == "kleister":
        items = [(p.name, p, gold) for p, gold in load_kleister(directory)]
    elif kind == "reviewed":
        items = list(load_reviewed(directory))
    else:
        items = [(eid, text.encode("utf-8"), gold) for eid, text, gold in load_aci(directory)]
    items = [item for item in items if in_split(item[0], split)]  # type: ignore[arg-type]
    return items[:limit] if limit else items


@dataclass(frozen=True)
class _Run:
    """A split's predictions: the dataset kind, one prediction per document, failures by code, how many ran."""

    kind: str
    predictions: list[Any]
    errors: dict[str, int]
    ran: int
    seconds: float


def _predict(
    settings: Settings, directory: Path, spec: SchemaSpec, split: str, limit: int | None, predictions: Path | None
) -> _Run:
    """Every document of the split, those already in the predictions file taken from it."""
    from evaluation import DATASET_SCHEMA, DatasetError, detect_dataset
    from evaluation.runner import PredictionsError, run_predictions

    if split not in ("fit", "report", "all"):
        fail("invalid_option", "--split must be fit, report or all")
    try:
        kind = detect_dataset(directory)
    except DatasetError as e:
        fail(e.code, str(e))
    if kind == "reviewed":
        from evaluation.reviewed import reviewed_schemas

        labelled = reviewed_schemas(directory)
        if labelled and labelled != {spec.name}:
            fail("schema_mismatch", f"the reviewed records are for schema {sorted(labelled)}, not {spec.name!r}")
    elif DATASET_SCHEMA[kind] != spec.name:
        fail("schema_mismatch", f"{kind} is labelled for schema {DATASET_SCHEMA[kind]!r}, not {spec.name!r}")
    items = _items(directory, kind, split, limit)
    engines: list[Engine] = []

    def extract(source: Any) -> dict[str, Any]:
        if not engines:
            engines.append(engine_from(settings))  # only when a document is really run
        doc = read_document(source, limits=limits_from(settings))
        options = replace(options_from(settings), keep_chunk_records=predictions is not None)
        return extract_document(doc, spec, engines[0], options)

    model = model_ref(settings)
    expect = {"schema": spec.ref, "model": model.model, "backend": model.backend}
    out: list[Any] = []
    errors: dict[str, int] = {}
    ran = 0
    started = time.perf_counter()
    try:
        with progress_bar("evaluating") as bar:
            task = bar.add_task("eval", total=len(items))
            for prediction, fresh in run_predictions(
                items, extract, path=predictions, expect=expect, on_done=lambda: bar.advance(task)
            ):
                out.append(prediction)
                ran += fresh
                if prediction.record is None:
                    code = str(prediction.line["error"].get("code", "error"))
                    errors[code] = errors.get(code, 0) + 1
    except PredictionsError as e:
        fail("predictions_mismatch", str(e))
    except WorkerError as e:
        fail(e.code, e.message, e.details)
    return _Run(kind, out, errors, ran, time.perf_counter() - started)


def _calibration_key(predictions: list[Any]) -> CalibrationKey | None:
    """The combination the records were made with (their own `calibration.key`)."""
    for p in predictions:
        key = ((p.record or {}).get("calibration") or {}).get("key")
        if key:
            return CalibrationKey(str(key["schema"]), key.get("model_sha256"), str(key["grammar_backend"]))
    return None


def evaluate(
    directory: DirectoryArg,
    schema: SchemaOpt,
    limit: LimitOpt = None,
    predictions: PredictionsOpt = None,
    split: Annotated[
        str, typer.Option(help="all, or the fit/report half (report: values calibration never saw).")
    ] = "all",
    plot: Annotated[
        Path | None, typer.Option(help="Draw the reliability diagram and precision–coverage here (PNG).")
    ] = None,
) -> None:
    """Score extractions against gold labels: per-field P/R/F1, confidence calibration; last line `micro_f1=<x>`."""
    from evaluation import format_report
    from evaluation.report import calibration_lines, plot_run, score_run

    settings = get_settings()
    configure_logging(settings.log_level)
    spec = schema_spec(schema)
    run = _predict(settings, directory, spec, split, limit, predictions)
    kind, preds = run.kind, run.predictions
    key = _calibration_key(preds)
    calibration = find_calibration(key, settings.calibration_dir) if key is not None else None
    scores = score_run(kind, preds, calibration)  # type: ignore[arg-type]
    print(
        f"documents={len(preds)} ran={run.ran} resumed={len(preds) - run.ran} failed={sum(run.errors.values())} "
        f"errors={run.errors} seconds={run.seconds:.0f} split={split}"
    )
    report = format_report(scores.fields, title=f"{kind} / {spec.ref} / {model_ref(settings).model}")
    for line in report[:-1]:
        print(line)
    for line in calibration_lines(scores):
        print(line)
    if plot is not None:
        plot_run(scores, plot, f"{kind} {spec.ref} split={split}")
    print(report[-1])


def calibrate(
    directory: DirectoryArg,
    schema: SchemaOpt,
    limit: LimitOpt = None,
    predictions: PredictionsOpt = None,
    split: Annotated[str, typer.Option(help="The half to fit on (fit: keep `report` unseen).")] = "fit",
    out: Annotated[
        Path | None, typer.Option(help="Folder for the calibration (default ABSTRACTOR_CALIBRATION_DIR or DATA_DIR).")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="auto: a weight per signal or Platt scaling of the heuristic score, whichever has the lower "
            "5-fold cross-validated log loss on the split; logistic or platt force one."
        ),
    ] = "auto",
) -> None:
    """Fit the confidence calibration for this schema, model and grammar backend on gold labels; print the file."""
    from evaluation.calibrate import CalibrationError, fit_calibration, write_calibration
    from evaluation.outcomes import value_outcomes

    settings = get_settings()
    configure_logging(settings.log_level)
    spec = schema_spec(schema)
    run = _predict(settings, directory, spec, split, limit, predictions)
    kind, preds, errors = run.kind, run.predictions, run.errors
    key = _calibration_key(preds)
    if key is None:
        fail("nothing_to_calibrate", "no document of the split gave a record")
    outcomes = [o for p in preds if p.record for o in value_outcomes(kind, p.name, p.record, p.gold)]  # type: ignore[arg-type]
    fitted_on = {"dataset": kind, "split": split, "documents": len(preds), "failed": sum(errors.values())}
    try:
        calibration = fit_calibration(outcomes, key, fitted_on=fitted_on, method=method)
    except CalibrationError as e:
        fail("calibration_failed", str(e))
    folder = out or settings.calibration_dir or settings.data_dir / "calibrations"
    path = write_calibration(calibration, folder)
    print(json.dumps({"calibration": str(path), "name": calibration.name, **calibration.fitted_on}))
