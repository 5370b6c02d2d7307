"""Scoring extractions against gold labels (Kleister-NDA, ACI-Bench); pure functions, no I/O but loaders."""

from service.evaluation.aci import clinical_record_to_gold_shape, load_aci, score_aci
from service.evaluation.datasets import DATASET_SCHEMA, DatasetError, DatasetKind, detect_dataset
from service.evaluation.kleister import load_kleister, nda_record_to_labels, score_kleister
from service.evaluation.scoring import FieldScores, format_report, print_report, score_label_sets

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
