"""Scoring extractions against gold labels (Kleister-NDA, ACI-Bench); pure functions, no I/O but loaders.

Offline evaluation, outside the runtime packages: nothing in `schemas`, `workers` or `service` imports it
but the `abstractor eval` command, which does so when it runs (an import contract holds the rest to that).
"""

from evaluation.aci import clinical_record_to_gold_shape, load_aci, score_aci
from evaluation.datasets import DATASET_SCHEMA, DatasetError, DatasetKind, detect_dataset
from evaluation.kleister import load_kleister, nda_record_to_labels, score_kleister
from evaluation.scoring import FieldScores, format_report, print_report, score_label_sets

__all__ = [
    "DATASET_SCHEMA",
    "DatasetError",
    "DatasetKind",
    "FieldScores",
    "clinical_record_to_gold_shape",
    "detect_dataset",
    "format_report",
    "load_aci",
    "load_kleister",
    "nda_record_to_labels",
    "print_report",
    "score_aci",
    "score_kleister",
    "score_label_sets",
]
