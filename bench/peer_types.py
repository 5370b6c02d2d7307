"""What `bench.peers` shares: the datasets, our scorers imported in one place, a document to run, a system's
answer and outcome, and the protocol every system follows.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data"
DATASET_DIRS = {"kleister": DATA / "kleister-nda/train", "aci": DATA / "aci-bench"}
DATASET_SCHEMA = {"kleister": "nda", "aci": "clinical_note"}
SYSTEMS = ("abstractor", "llamacpp_grammar", "langextract")
N_CTX = 4096  # Abstractor's default context window; every peer gets the same
SERVED_MODEL = "abstractor"
LANGEXTRACT_VENV = ROOT / ".tools/langextract-venv"
LANGEXTRACT_SETUP = ROOT / "bench/setup-langextract"
LANGEXTRACT_RUNNER = ROOT / "bench/langextract_runner.py"
LANGEXTRACT_CHAR_BUFFER = 1000  # langextract's own default chunk size, as a user following its docs keeps it
EVALUATION_PACKAGES = ("evaluation", "service.evaluation")  # its new home first, then the old one


# --- our scorers, imported in one place -----------------------------------------------------------------


class Scores(Protocol):
    """What the table needs of our scorers' per-field counts (`FieldScores`)."""

    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float: ...


@dataclass(frozen=True)
class Evaluation:
    """The loaders and scorers of our evaluation package, as plain callables."""

    load_kleister: Callable[[Path], list[tuple[Path, list[str]]]]
    load_aci: Callable[[Path], list[tuple[str, str, dict[str, Any]]]]
    nda_record_to_labels: Callable[[dict[str, Any]], list[str]]
    clinical_record_to_gold_shape: Callable[[dict[str, Any]], dict[str, Any]]
    score_kleister: Callable[[list[tuple[Any, Any]]], Mapping[str, Scores]]
    score_aci: Callable[[list[tuple[Any, Any]]], Mapping[str, Scores]]
    micro: Callable[[Mapping[str, Any]], Scores]


def evaluation() -> Evaluation:
    """Our scorers, imported here only, so a move of the package changes EVALUATION_PACKAGES and nothing else."""
    for name in EVALUATION_PACKAGES:
        try:
            package = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise  # the package is there but broken: say so rather than score with the old copy
            continue
        scoring = importlib.import_module(f"{name}.scoring")
        break
    else:
        raise ModuleNotFoundError(f"none of {', '.join(EVALUATION_PACKAGES)} is importable")
    return Evaluation(
        load_kleister=package.load_kleister,
        load_aci=package.load_aci,
        nda_record_to_labels=package.nda_record_to_labels,
        clinical_record_to_gold_shape=package.clinical_record_to_gold_shape,
        score_kleister=package.score_kleister,
        score_aci=package.score_aci,
        micro=scoring.micro,
    )


# --- documents and outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One evaluated document: a Kleister PDF path or an ACI note's bytes, with its gold labels."""

    dataset: str
    name: str
    source: Path | bytes
    gold: Any


def choose(count: int, n: int, seed: int) -> list[int]:
    """`n` of `count` indices drawn with `seed`, in ascending order (the same documents on every run)."""
    return sorted(random.Random(seed).sample(range(count), min(n, count)))


def load_items(ev: Evaluation, dataset: str, n: int, seed: int) -> list[Item]:
    """The `n` documents of a dataset that this seed draws."""
    directory = DATASET_DIRS[dataset]
    if dataset == "kleister":
        kleister = ev.load_kleister(directory)
        return [
            Item(dataset, kleister[i][0].name, kleister[i][0], kleister[i][1]) for i in choose(len(kleister), n, seed)
        ]
    aci = ev.load_aci(directory)
    return [Item(dataset, aci[i][0], aci[i][1].encode("utf-8"), aci[i][2]) for i in choose(len(aci), n, seed)]


@dataclass(frozen=True)
class Answer:
    """What a system returns for one document: a record in our schema's shape, and what it cost."""

    record: dict[str, Any]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    truncated: bool = False
    model_seconds: float | None = None
    """Seconds of the extraction itself where the system measures them (langextract's runner start-up
    is not counted, as a long-running user process would not pay it per document)."""
    chars_sent: int | None = None
    """Characters of the document the model saw, where the system truncates it."""
    requests: int | None = None
    cut_answers: int | None = None
    """Model answers that stopped at the token budget (a peer that swallows the resulting parse errors)."""


@dataclass
class Outcome:
    """One system on one document; `record` is None when it failed (scored as nothing predicted)."""

    system: str
    dataset: str
    name: str
    pages: int = 0
    seconds: float = 0.0
    record: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    truncated: bool = False
    chars: int = 0
    chars_sent: int | None = None
    requests: int | None = None
    cut_answers: int | None = None
    load: float | None = None
    """The machine's 1-minute load average when the document finished: the box is shared, so say how busy."""
    error: str | None = None


class PeerError(RuntimeError):
    """A system's failure on one document, with a short code for the table (no document content)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def error_code(exc: BaseException) -> str:
    """A short failure code: ours where the exception has one, else the exception's type."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


# --- the systems ------------------------------------------------------------------------------------------


class System(Protocol):
    """One extractor under test, loaded once and run on every document."""

    name: str
    threads: int

    def extract(self, doc: Any, schema_name: str, deadline: float) -> Answer: ...

    def close(self) -> None: ...
