"""Which gold-labelled set a directory holds, so `abstractor eval DIR` needs no extra flag."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from evaluation.aci import aci_splits
from evaluation.kleister import kleister_labels_path
from evaluation.reviewed import REVIEWED_FILE
from workers.errors import AbstractorError

DatasetKind = Literal["kleister", "aci", "reviewed"]
DATASET_SCHEMA: dict[DatasetKind, str] = {"kleister": "nda", "aci": "clinical_note"}
"""The built-in schema each public set is labelled for (a reviewed set names its own in every line)."""


class DatasetError(AbstractorError):
    """The evaluation package's root: the directory holds no evaluation set that we know (bad input)."""

    code = "unknown_dataset"


def detect_dataset(directory: Path) -> DatasetKind:
    """`kleister` for a folder with `labels.tsv` (or `train/labels.tsv`); `aci` for `*_metadata.csv`;
    `reviewed` for `reviewed.jsonl` (written by `abstractor export-gold`)."""
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    if (directory / REVIEWED_FILE).is_file():
        return "reviewed"
    if kleister_labels_path(directory) is not None:
        return "kleister"
    if aci_splits(directory):
        return "aci"
    raise DatasetError(
        f"{directory} holds neither Kleister-NDA labels (labels.tsv), ACI-Bench splits (train.csv with "
        "train_metadata.csv) nor reviewed records (reviewed.jsonl)"
    )
