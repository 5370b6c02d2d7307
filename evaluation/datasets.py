"""Which gold-labelled set a directory holds, so `abstractor eval DIR` needs no extra flag."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from evaluation.aci import aci_splits
from evaluation.kleister import kleister_labels_path
from workers.errors import AbstractorError

DatasetKind = Literal["kleister", "aci"]
DATASET_SCHEMA: dict[DatasetKind, str] = {"kleister": "nda", "aci": "clinical_note"}
"""The built-in schema each set is labelled for."""


class DatasetError(AbstractorError):
    """The evaluation package's root: the directory holds no evaluation set that we know (bad input)."""

    code = "unknown_dataset"


def detect_dataset(directory: Path) -> DatasetKind:
    """`kleister` for a folder with `labels.tsv` (or `train/labels.tsv`); `aci` for `*_metadata.csv`."""
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a directory")
    if kleister_labels_path(directory) is not None:
        return "kleister"
    if aci_splits(directory):
        return "aci"
    raise DatasetError(
        f"{directory} holds neither Kleister-NDA labels (labels.tsv) "
        "nor ACI-Bench splits (train.csv with train_metadata.csv)"
    )
