"""Side by side with what a user would pick instead: Abstractor, llama.cpp's own JSON-schema grammar, langextract.

Run: .venv/bin/python -m bench.peers [--kleister 10] [--aci 10] [--seed 14]
         [--systems abstractor,llamacpp_grammar,langextract] [--timeout 3600] [--predictions FILE]

On the same documents (Kleister-NDA train PDFs and ACI-Bench train notes, drawn with a fixed seed) and
the same embedded GGUF, one system after another:

- `abstractor`: `read_document` + `extract_document` with the embedded `LlamaCppEngine` and the built-in
  schema (`nda`, `clinical_note`), default pipeline options;
- `llamacpp_grammar`: the whole document (truncated to fit the context with room for the answer) and
  the schema in one `create_chat_completion` with `response_format={"type": "json_object", "schema": ...}`,
  i.e. llama.cpp's GBNF grammar sampler, behind a short instruction prompt;
- `langextract`: google's langextract in its own virtual environment (`bench/setup-langextract`), with
  its OpenAI-compatible provider against `python -m llama_cpp.server` serving the same GGUF, and a
  few-shot example per schema; its extractions are mapped onto our schemas' fields.

All are scored by our own scorers. Progress goes to stderr (names, counts, timings only); stdout gets
one table and, last, one `peers <dataset> <system> micro_f1=<x> seconds_per_page=<y>` line per row.
A system that fails on a document scores it as empty and counts a failure; the run never aborts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib
import json
import multiprocessing
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol, TextIO

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


class AbstractorSystem:
    """Abstractor end to end: the embedded `LlamaCppEngine`, the built-in schema, default options."""

    name = "abstractor"

    def __init__(self) -> None:
        from workers.engines.llamacpp import LlamaCppEngine

        self._engine: Any = LlamaCppEngine(cache_dir=ROOT / "var/models", n_ctx=N_CTX)
        self.threads = int(self._engine.info.extra.get("n_threads") or os.cpu_count() or 1)

    def extract(self, doc: Any, schema_name: str, deadline: float) -> Answer:
        """`extract_document` with default options; the deadline stops new engine calls past it."""
        from schemas.registry import get_schema
        from workers.pipeline.run import PipelineOptions, extract_document

        record = extract_document(doc, get_schema(schema_name), self._engine, PipelineOptions(deadline=deadline))
        timings = record["timings"]
        return Answer(record["data"], int(timings["prompt_tokens"]), int(timings["completion_tokens"]))

    def close(self) -> None:
        """Free the model before the next system loads its own copy."""
        del self._engine
        gc.collect()


GRAMMAR_INSTRUCTIONS = (
    "Extract a {title} record from the document the user sends. Reply with one JSON object that follows "
    "this JSON Schema. Copy values exactly as written in the document; use null (or [] for a list) for "
    "anything it does not state.\n\nJSON Schema:\n{schema}"
)
"""The few lines a user would write around llama.cpp's JSON-schema mode."""
CHAT_TEMPLATE_TOKENS = 32  # Qwen's chat template adds about ten tokens per turn; keep a margin


def truncate_to_tokens(text: str, budget: int, count_tokens: Callable[[str], int]) -> tuple[str, bool]:
    """The longest prefix of `text` within `budget` tokens, cut at a word boundary; and whether it was cut.

    A binary search over the prefix length needs only ~log2(len) token counts of a long document.
    """
    if count_tokens(text) <= budget:
        return text, False
    if budget <= 0:
        return "", True
    lo, hi = 0, len(text)  # invariant: text[:lo] fits, text[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_tokens(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid
    prefix = text[:lo]
    space = max(prefix.rfind(" "), prefix.rfind("\n"))
    if space > len(prefix) - 200:  # back off to a whole word, unless the last word is absurdly long
        prefix = prefix[:space]
    return prefix.rstrip(), True


def grammar_messages(title: str, schema: dict[str, Any], text: str) -> list[dict[str, str]]:
    """The baseline's chat: instructions with the schema, then the (truncated) document."""
    system = GRAMMAR_INSTRUCTIONS.format(title=title, schema=json.dumps(schema, separators=(",", ":")))
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def _grammar_worker(conn: Connection, model_path: str, n_ctx: int, threads: int) -> None:
    """Child process holding `llama_cpp.Llama`: the only way to bound a running C call is to kill its process."""
    from llama_cpp import Llama

    llm = Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        seed=0,
        verbose=False,
    )

    def count(text: str) -> int:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    conn.send({"ready": True})
    while True:
        job = conn.recv()
        if job is None:
            return
        started = time.perf_counter()
        schema, max_tokens = job["schema"], job["max_tokens"]
        overhead = count(grammar_messages(job["title"], schema, "")[0]["content"]) + CHAT_TEMPLATE_TOKENS
        text, truncated = truncate_to_tokens(job["text"], n_ctx - overhead - max_tokens, count)
        try:
            out: Any = llm.create_chat_completion(
                messages=grammar_messages(job["title"], schema, text),  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.0,
                response_format={"type": "json_object", "schema": schema},
            )
        except Exception as e:  # noqa: BLE001 - sent back as this document's failure
            conn.send({"error": error_code(e)})
            continue
        choice = out["choices"][0]
        conn.send(
            {
                "content": choice["message"].get("content") or "",
                "finish_reason": choice.get("finish_reason"),
                "usage": out.get("usage", {}),
                "truncated": truncated,
                "chars_sent": len(text),
                "seconds": time.perf_counter() - started,
            }
        )


class LlamaCppGrammarSystem:
    """llama.cpp's own JSON-schema mode, one request per document, in a child process that can be killed."""

    name = "llamacpp_grammar"

    def __init__(self, model_path: Path, threads: int, max_tokens: int) -> None:
        self.threads = threads
        self.max_tokens = max_tokens
        self._model_path = model_path
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_grammar_worker, args=(child, str(self._model_path), N_CTX, self.threads), daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(300) or not parent.recv().get("ready"):
            raise PeerError("model_load_timeout")

    def _stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(timeout=30)
        self._proc = None

    def extract(self, doc: Any, schema_name: str, deadline: float) -> Answer:
        """One constrained request; past the deadline the child is killed (and restarted for the next one)."""
        from schemas.registry import get_schema

        spec = get_schema(schema_name)
        schema = spec.json_schema()
        if self._proc is None:
            self._start()
        assert self._conn is not None
        job = {"title": str(schema.get("title") or spec.name), "schema": schema, "text": doc.text}
        self._conn.send({**job, "max_tokens": self.max_tokens})
        if not self._conn.poll(max(1.0, deadline - time.monotonic())):
            self._stop()
            raise PeerError("timeout")
        reply = self._conn.recv()
        if "error" in reply:
            raise PeerError(reply["error"])
        usage = reply["usage"]
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        try:
            record = json.loads(reply["content"])
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise PeerError("length" if reply["finish_reason"] == "length" else "invalid_json")
        return Answer(
            record,
            prompt,
            completion,
            truncated=bool(reply["truncated"]),
            model_seconds=float(reply["seconds"]),
            chars_sent=int(reply["chars_sent"]),
            requests=1,
            cut_answers=int(reply["finish_reason"] == "length"),
        )

    def close(self) -> None:
        """Ask the child to exit, then make sure it has."""
        with contextlib.suppress(OSError, ValueError):
            if self._conn is not None:
                self._conn.send(None)
        if self._proc is not None:
            self._proc.join(timeout=10)
        self._stop()


# --- langextract ------------------------------------------------------------------------------------------

NDA_PROMPT = (
    "Extract, in order of appearance and with the exact text of the document: each party (a company or "
    'person that makes the agreement, by its full name; not defined terms such as "Recipient" or "the '
    "Company\", not signatories' titles, not addresses), the effective_date (with attribute iso_date as "
    "YYYY-MM-DD), the jurisdiction (the state or country whose laws govern the agreement; not a state of "
    "incorporation) and the term (how long the agreement lasts). Do not paraphrase."
)
NDA_EXAMPLES: list[dict[str, Any]] = [
    {
        "text": (
            "CONFIDENTIALITY AGREEMENT\n\nThis Confidentiality Agreement is made as of September 14, 2011 "
            'between Larkspur Genomics Corp., a Nevada corporation ("Larkspur"), and Quillon Partners L.P. '
            '(the "Recipient").\n\n6. Term. The obligations of this Agreement shall continue for two (2) '
            "years after the date hereof.\n\n8. This Agreement shall be governed by and construed in "
            "accordance with the laws of the State of Oregon."
        ),
        "extractions": [
            {"extraction_class": "effective_date", "extraction_text": "September 14, 2011",
             "attributes": {"iso_date": "2011-09-14"}},
            {"extraction_class": "party", "extraction_text": "Larkspur Genomics Corp."},
            {"extraction_class": "party", "extraction_text": "Quillon Partners L.P."},
            {"extraction_class": "term", "extraction_text": "two (2) years"},
            {"extraction_class": "jurisdiction", "extraction_text": "State of Oregon"},
        ],
    },
    {
        "text": (
            "IN WITNESS WHEREOF, the parties have executed this Agreement as of the date first above "
            "written.\n\nMERIDIAN HARBOR HOLDINGS, INC.\nBy: /s/ Paula Greaves\nName: Paula Greaves\n"
            "Title: Chief Financial Officer\n\nDAVID OKONKWO\n/s/ David Okonkwo"
        ),
        "extractions": [
            {"extraction_class": "party", "extraction_text": "MERIDIAN HARBOR HOLDINGS, INC."},
            {"extraction_class": "party", "extraction_text": "DAVID OKONKWO"},
        ],
    },
]  # fmt: skip

CLINICAL_PROMPT = (
    "Extract, in order of appearance and with the exact text of the note: the chief_complaint (the main "
    "reason for the visit), patient_age (attribute years, a number), patient_sex (attribute sex: female, "
    "male or other), each diagnosis, medication (attributes dose, route, frequency when stated), allergy, "
    "vital (attribute kind: blood_pressure, heart_rate, temperature, respiratory_rate or "
    "oxygen_saturation), procedure, and the follow_up plan. Do not paraphrase."
)
CLINICAL_EXAMPLES: list[dict[str, Any]] = [
    {
        "text": (
            "CHIEF COMPLAINT\n\nWheezing.\n\nHISTORY OF PRESENT ILLNESS\n\nMs. Renata Voss is a 37-year-old "
            "female who reports wheezing at night for three weeks. She has a history of asthma and uses an "
            "albuterol inhaler 2 puffs as needed. She is allergic to sulfa drugs.\n\nVITALS\n\nBlood "
            "pressure 118/76. Heart rate 88. Oxygen saturation 95% on room air.\n\nASSESSMENT AND PLAN\n\n"
            "Asthma exacerbation. Start fluticasone 110 mcg inhaled twice daily. Obtain spirometry. Return "
            "in 4 weeks."
        ),
        "extractions": [
            {"extraction_class": "chief_complaint", "extraction_text": "Wheezing"},
            {"extraction_class": "patient_age", "extraction_text": "37-year-old", "attributes": {"years": "37"}},
            {"extraction_class": "patient_sex", "extraction_text": "female", "attributes": {"sex": "female"}},
            {"extraction_class": "diagnosis", "extraction_text": "asthma"},
            {"extraction_class": "medication", "extraction_text": "albuterol inhaler",
             "attributes": {"dose": "2 puffs", "frequency": "as needed"}},
            {"extraction_class": "allergy", "extraction_text": "sulfa drugs"},
            {"extraction_class": "vital", "extraction_text": "118/76", "attributes": {"kind": "blood_pressure"}},
            {"extraction_class": "vital", "extraction_text": "88", "attributes": {"kind": "heart_rate"}},
            {"extraction_class": "vital", "extraction_text": "95%", "attributes": {"kind": "oxygen_saturation"}},
            {"extraction_class": "diagnosis", "extraction_text": "Asthma exacerbation"},
            {"extraction_class": "medication", "extraction_text": "fluticasone",
             "attributes": {"dose": "110 mcg", "route": "inhaled", "frequency": "twice daily"}},
            {"extraction_class": "procedure", "extraction_text": "spirometry"},
            {"extraction_class": "follow_up", "extraction_text": "Return in 4 weeks"},
        ],
    },
]  # fmt: skip

LANGEXTRACT_TASKS = {"nda": (NDA_PROMPT, NDA_EXAMPLES), "clinical_note": (CLINICAL_PROMPT, CLINICAL_EXAMPLES)}

_CLASS_ALIASES = {
    "parties": "party",
    "date": "effective_date",
    "governing_law": "jurisdiction",
    "duration": "term",
    "age": "patient_age",
    "sex": "patient_sex",
    "gender": "patient_sex",
    "patient_gender": "patient_sex",
    "diagnoses": "diagnosis",
    "medications": "medication",
    "allergies": "allergy",
    "vitals": "vital",
    "procedures": "procedure",
}
VITAL_KINDS = ("blood_pressure", "heart_rate", "temperature", "respiratory_rate", "oxygen_saturation")
_DATE_FORMATS = ("%Y-%m-%d", "%B %d, %Y", "%B %d %Y", "%b %d, %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y", "%m/%d/%Y")
_ORDINAL_DAY = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+day\s+of\s+([A-Za-z]+)\s*,?\s*(\d{4})\b", re.IGNORECASE)
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen".split()
    )
} | {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_FEMALE_CUES = frozenset("female woman girl lady she her mrs ms miss".split())
_MALE_CUES = frozenset("male man boy gentleman he his him mr".split())


def class_name(extraction: Mapping[str, Any]) -> str:
    """An extraction's class, lower-cased, with the plural and synonym spellings a model may use folded."""
    name = re.sub(r"[\s-]+", "_", str(extraction.get("extraction_class") or "").strip().lower())
    return _CLASS_ALIASES.get(name, name)


def attribute(extraction: Mapping[str, Any], key: str) -> str | None:
    """One attribute as text (the first item of a list), or None."""
    value = (extraction.get("attributes") or {}).get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


def grounded_in_order(extractions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Extractions langextract aligned to the source, in document order.

    Its docs recommend dropping the unaligned ones (often copied from the few-shot examples), as
    Abstractor drops values it cannot ground.
    """
    kept = [
        e for e in extractions if e.get("start") is not None and " ".join(str(e.get("extraction_text") or "").split())
    ]
    return sorted(kept, key=lambda e: int(e["start"]))


def _text(extraction: Mapping[str, Any]) -> str:
    return " ".join(str(extraction.get("extraction_text") or "").split())


def iso_date(text: str, iso_attribute: str | None) -> str:
    """The date as YYYY-MM-DD: the model's `iso_date` attribute if valid, else parsed from the text, else as written."""
    for candidate in (iso_attribute, text):
        if not candidate:
            continue
        ordinal = _ORDINAL_DAY.search(candidate)  # "the 2nd day of March, 1999"
        cleaned = f"{ordinal[2]} {ordinal[1]}, {ordinal[3]}" if ordinal else candidate
        cleaned = re.sub(r"(\d{1,2})(?:st|nd|rd|th)\b", r"\1", cleaned).replace(".", "").strip()
        for fmt in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(cleaned, fmt).date().isoformat()
            except ValueError:
                continue
    return text


def nda_record(extractions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An `nda@1`-shaped record from langextract extractions: every party, the first of each other field."""
    record: dict[str, Any] = {"parties": [], "effective_date": None, "jurisdiction": None, "term": None}
    seen: set[str] = set()
    for e in grounded_in_order(extractions):
        name, text = class_name(e), _text(e)
        if name == "party" and text.casefold() not in seen:
            seen.add(text.casefold())
            record["parties"].append(text)
        elif name == "effective_date" and record["effective_date"] is None:
            record["effective_date"] = iso_date(text, attribute(e, "iso_date"))
        elif name in ("jurisdiction", "term") and record[name] is None:
            record[name] = text
    return record


def age_years(text: str, years_attribute: str | None) -> int | None:
    """Age in years from the `years` attribute, else the first number in the text (digits or words)."""
    for candidate in (years_attribute, text):
        if not candidate:
            continue
        digits = re.search(r"\b(\d{1,3})\b", candidate)
        if digits:
            value = int(digits.group(1))
            return value if 0 <= value <= 130 else None
        words = re.findall(r"[a-z]+", candidate.lower())
        total, found = 0, False
        for word in words:
            if word in _NUMBER_WORDS:
                total, found = total + _NUMBER_WORDS[word], True
            elif found:
                break
        if found:
            return total
    return None


def patient_sex(text: str, sex_attribute: str | None) -> str | None:
    """`female`, `male` or `other` from the `sex` attribute, else from a cue in the text ("woman", "Mr.")."""
    if sex_attribute and sex_attribute.lower() in ("female", "male", "other"):
        return sex_attribute.lower()
    words = set(re.findall(r"[a-z]+", f"{sex_attribute or ''} {text}".lower()))
    if words & _FEMALE_CUES:
        return "female"
    if words & _MALE_CUES:
        return "male"
    return None


def clinical_record(extractions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A `clinical_note@1`-shaped record from langextract extractions (lists collect, single fields keep the first)."""
    record: dict[str, Any] = {
        "patient_age": None,
        "patient_sex": None,
        "chief_complaint": None,
        "diagnoses": [],
        "medications": [],
        "allergies": [],
        "vitals": None,
        "procedures": [],
        "follow_up": None,
    }
    lists = {"diagnosis": "diagnoses", "allergy": "allergies", "procedure": "procedures"}
    for e in grounded_in_order(extractions):
        name, text = class_name(e), _text(e)
        if name == "patient_age" and record["patient_age"] is None:
            record["patient_age"] = age_years(text, attribute(e, "years"))
        elif name == "patient_sex" and record["patient_sex"] is None:
            record["patient_sex"] = patient_sex(text, attribute(e, "sex"))
        elif name in ("chief_complaint", "follow_up") and record[name] is None:
            record[name] = text
        elif name in lists and text not in record[lists[name]]:
            record[lists[name]].append(text)
        elif name == "medication":
            record["medications"].append({"name": text, **{k: attribute(e, k) for k in ("dose", "route", "frequency")}})
        elif name == "vital":
            kind = (attribute(e, "kind") or "").lower().replace(" ", "_")
            if kind in VITAL_KINDS:
                vitals = record["vitals"] or dict.fromkeys(VITAL_KINDS)
                vitals[kind] = vitals[kind] or text
                record["vitals"] = vitals
    return record


def record_from_extractions(schema_name: str, extractions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Our schema's record for langextract's extractions."""
    return nda_record(extractions) if schema_name == "nda" else clinical_record(extractions)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llama_server(model_path: Path, threads: int, log: TextIO) -> Iterator[str]:
    """`python -m llama_cpp.server` (from our .venv) serving the GGUF as `abstractor`; yields its /v1 URL."""
    port = free_port()
    # fmt: off
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path), "--model_alias", SERVED_MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", str(threads), "--n_threads_batch", str(threads),
        "--seed", "0", "--verbose", "False",
    ]
    # fmt: on
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise PeerError("server_exited")
            if time.monotonic() > deadline:
                raise PeerError("server_start_timeout")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)  # still loading the model
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class LangExtractSystem:
    """langextract from its own venv, one runner process per document, against a local llama.cpp server."""

    name = "langextract"

    def __init__(self, model_path: Path, threads: int, max_output_tokens: int, request_timeout_s: float) -> None:
        self.threads = threads
        self.max_output_tokens = max_output_tokens
        self.request_timeout_s = request_timeout_s
        subprocess.run(["bash", str(LANGEXTRACT_SETUP)], check=True, timeout=1800, stdout=subprocess.DEVNULL)
        self.python = LANGEXTRACT_VENV / "bin/python"
        self._stack = contextlib.ExitStack()
        log_path = Path(tempfile.gettempdir()) / "abstractor-peers-llama-server.log"
        log = self._stack.enter_context(log_path.open("w"))
        self.base_url = self._stack.enter_context(llama_server(model_path, threads, log))

    def extract(self, doc: Any, schema_name: str, deadline: float) -> Answer:
        """Run langextract on the document text and map its extractions onto the schema's fields."""
        prompt, examples = LANGEXTRACT_TASKS[schema_name]
        job = {
            "text": doc.text,
            "prompt_description": prompt,
            "examples": examples,
            "base_url": self.base_url,
            "model_id": SERVED_MODEL,
            "max_char_buffer": LANGEXTRACT_CHAR_BUFFER,
            "max_output_tokens": self.max_output_tokens,
            "request_timeout_s": self.request_timeout_s,
        }
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        try:
            done = subprocess.run(
                [str(self.python), str(LANGEXTRACT_RUNNER)],
                input=json.dumps(job),
                capture_output=True,  # its stderr may quote the document: never shown
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                env=env,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired as e:
            raise PeerError("timeout") from e
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise PeerError(f"runner_exit_{done.returncode}")
        reply = json.loads(lines[-1])
        if "error" in reply:
            cause = reply.get("cause")
            raise PeerError(f"{reply['error']}({cause})" if cause else reply["error"])
        record = record_from_extractions(schema_name, reply["extractions"])
        return Answer(
            record,
            reply.get("prompt_tokens"),
            reply.get("completion_tokens"),
            model_seconds=float(reply["seconds"]),
            requests=reply.get("requests"),
            cut_answers=reply.get("cut_answers"),
        )

    def close(self) -> None:
        """Stop the server."""
        self._stack.close()


def open_system(name: str, model_path: Path, threads: int | None, options: argparse.Namespace) -> System:
    """Load one system; the peers use Abstractor's thread count (and, without it, every core as it does)."""
    from workers.pipeline.run import PipelineOptions

    # Every model answer gets Abstractor's answer budget per request (its first try on a chunk).
    answer_tokens = PipelineOptions().max_new_tokens
    n_threads = threads or os.cpu_count() or 1
    if name == "abstractor":
        return AbstractorSystem()
    if name == "llamacpp_grammar":
        return LlamaCppGrammarSystem(model_path, n_threads, answer_tokens)
    if name == "langextract":
        return LangExtractSystem(model_path, n_threads, answer_tokens, options.request_timeout)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")


# --- running and scoring ----------------------------------------------------------------------------------


def load_average() -> float | None:
    """The 1-minute load average, where the platform has one."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_one(system: System, item: Item, timeout_s: float) -> Outcome:
    """Read and extract one document, timed; any failure becomes an empty prediction with its code."""
    outcome = _run_one(system, item, timeout_s)
    outcome.load = load_average()
    return outcome


def _run_one(system: System, item: Item, timeout_s: float) -> Outcome:
    from workers.documents import read_document

    outcome = Outcome(system.name, item.dataset, item.name)
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    try:
        doc = read_document(item.source)
        outcome.pages, outcome.chars = len(doc.pages), len(doc.text)
        read_s = time.perf_counter() - started
        answer = system.extract(doc, DATASET_SCHEMA[item.dataset], deadline)
    except Exception as e:  # noqa: BLE001 - a failed document is scored as empty, never aborts the run
        outcome.error = error_code(e)
        outcome.seconds = time.perf_counter() - started
        return outcome
    elapsed = time.perf_counter() - started
    outcome.seconds = (read_s + answer.model_seconds) if answer.model_seconds is not None else elapsed
    outcome.record = answer.record
    outcome.prompt_tokens = answer.prompt_tokens
    outcome.completion_tokens = answer.completion_tokens
    outcome.truncated = answer.truncated
    outcome.chars_sent = answer.chars_sent
    outcome.requests = answer.requests
    outcome.cut_answers = answer.cut_answers
    return outcome


def failed_outcomes(name: str, items: Sequence[Item], code: str) -> list[Outcome]:
    """Every document counted as failed, for a system that could not even be loaded."""
    return [Outcome(name, item.dataset, item.name, error=code) for item in items]


@dataclass(frozen=True)
class Summary:
    """One table row: a system on a dataset."""

    dataset: str
    system: str
    documents: int
    failures: Mapping[str, int]
    micro_f1: float
    field_f1: Mapping[str, float]
    pages: int
    seconds: float
    prompt_tokens: int | None
    completion_tokens: int | None
    truncated: int = 0
    text_share: float | None = None
    """Share of the documents' characters the model saw (for a system that truncates)."""
    requests: int | None = None
    cut_answers: int | None = None
    load: float | None = None
    """Mean 1-minute load average over the row's documents."""

    @property
    def seconds_per_page(self) -> float:
        """Seconds per page (per note for ACI, whose notes are one page)."""
        return self.seconds / self.pages if self.pages else float("nan")


def _sum_known(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _mean_known(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _text_share(outcomes: Sequence[Outcome]) -> float | None:
    sent = [(o.chars_sent, o.chars) for o in outcomes if o.chars_sent is not None]
    total = sum(chars for _, chars in sent)
    return sum(n for n, _ in sent) / total if sent and total else None


def notes(summary: Summary) -> str:
    """What a reader needs to weigh a row: truncated documents, answers cut at the token budget."""
    parts = []
    if summary.truncated:
        share = f", {summary.text_share:.0%} of the text seen" if summary.text_share is not None else ""
        parts.append(f"truncated {summary.truncated}/{summary.documents}{share}")
    if summary.cut_answers and summary.requests:
        parts.append(f"{summary.cut_answers}/{summary.requests} answers hit max_tokens")
    if summary.load is not None:
        parts.append(f"load {summary.load:.1f}")
    return "; ".join(parts)


def summarize(ev: Evaluation, items: Sequence[Item], outcomes: Sequence[Outcome]) -> Summary:
    """Score one system's outcomes on one dataset with our scorers."""
    gold = {item.name: item.gold for item in items}
    dataset = items[0].dataset
    pairs: list[tuple[Any, Any]] = []
    for o in outcomes:
        if dataset == "kleister":
            pairs.append((ev.nda_record_to_labels(o.record) if o.record else [], gold[o.name]))
        else:
            empty = {"patient_age": None, "patient_sex": None, "chief_complaint": None}
            pairs.append((ev.clinical_record_to_gold_shape(o.record) if o.record else empty, gold[o.name]))
    scores = ev.score_kleister(pairs) if dataset == "kleister" else ev.score_aci(pairs)
    # A failed document's pages still count: its seconds were spent, and it scored nothing.
    pages = sum(o.pages or 1 for o in outcomes)
    return Summary(
        dataset=dataset,
        system=outcomes[0].system,
        documents=len(outcomes),
        failures=Counter(o.error for o in outcomes if o.error),
        micro_f1=ev.micro(scores).f1,
        field_f1={name: s.f1 for name, s in sorted(scores.items())},
        pages=pages,
        seconds=sum(o.seconds for o in outcomes),
        prompt_tokens=_sum_known([o.prompt_tokens for o in outcomes]),
        completion_tokens=_sum_known([o.completion_tokens for o in outcomes]),
        truncated=sum(o.truncated for o in outcomes),
        text_share=_text_share(outcomes),
        requests=_sum_known([o.requests for o in outcomes]),
        cut_answers=_sum_known([o.cut_answers for o in outcomes]),
        load=_mean_known([o.load for o in outcomes]),
    )


def _ratio(value: float, reference: float | None) -> str:
    if reference is None or reference == 0 or value != value:
        return "n/a"
    return f"{value / reference:.2f}"


def _tokens(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _failures(summary: Summary) -> str:
    total = sum(summary.failures.values())
    if not total:
        return "0"
    detail = ", ".join(f"{code} {n}" for code, n in sorted(summary.failures.items()))
    return f"{total} ({detail})"


TABLE_COLUMNS = (
    "dataset",
    "system",
    "docs",
    "failures",
    "micro-F1",
    "per-field F1",
    "s/page",
    "prompt tok",
    "gen tok",
    "F1 ÷ Abstractor",
    "s/page ÷ Abstractor",
    "notes",
)


def format_table(summaries: Sequence[Summary]) -> list[str]:
    """One Markdown table (a README can take it as is): a row per dataset and system, ratios to Abstractor."""
    reference = {s.dataset: s for s in summaries if s.system == "abstractor"}
    rows = []
    for s in summaries:
        ref = reference.get(s.dataset)
        fields = ", ".join(f"{name} {f1:.3f}" for name, f1 in s.field_f1.items())
        rows.append(
            (
                s.dataset,
                s.system,
                str(s.documents),
                _failures(s),
                f"{s.micro_f1:.3f}",
                fields,
                f"{s.seconds_per_page:.2f}",
                _tokens(s.prompt_tokens),
                _tokens(s.completion_tokens),
                _ratio(s.micro_f1, ref.micro_f1 if ref else None),
                _ratio(s.seconds_per_page, ref.seconds_per_page if ref else None),
                notes(s),
            )
        )
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(TABLE_COLUMNS)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(TABLE_COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]


def summary_lines(summaries: Sequence[Summary]) -> list[str]:
    """The lines a README quotes: `peers <dataset> <system> micro_f1=<x> seconds_per_page=<y>`."""
    return [
        f"peers {s.dataset} {s.system} micro_f1={s.micro_f1:.4f} seconds_per_page={s.seconds_per_page:.2f}"
        for s in summaries
    ]


def progress_line(index: int, total: int, outcome: Outcome) -> str:
    """A stderr progress line: names, counts and timings only, never document content or values."""
    status = "ok" if outcome.error is None else f"failed={outcome.error}"
    tokens = f"prompt={_tokens(outcome.prompt_tokens)} gen={_tokens(outcome.completion_tokens)}"
    cut = " truncated" if outcome.truncated else ""
    load = f" load={outcome.load:.1f}" if outcome.load is not None else ""
    return (
        f"[{outcome.dataset} {index}/{total}] {outcome.system} {outcome.name[:16]} pages={outcome.pages} "
        f"seconds={outcome.seconds:.1f} {tokens}{cut}{load} {status}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--systems` is a comma-separated subset of SYSTEMS, run in the order given."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kleister", type=int, default=10, help="Kleister-NDA train PDFs (0: none).")
    parser.add_argument("--aci", type=int, default=10, help="ACI-Bench train notes (0: none).")
    parser.add_argument("--seed", type=int, default=14, help="Seed of the document draw.")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="Comma-separated, from: " + ", ".join(SYSTEMS))
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="Seconds allowed per system and document (generous: the machine is shared, and nice'd runs crawl).",
    )
    parser.add_argument("--request-timeout", type=float, default=1800.0, help="Seconds per langextract request.")
    parser.add_argument("--predictions", type=Path, help="Write every outcome (records included) as JSON lines.")
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    return args


def log(message: str) -> None:
    """One progress line on stderr, flushed (the run is long and often piped through tee)."""
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run every chosen system on every chosen document, then print the table and the summary lines."""
    from workers.engines.model_files import ensure_embedded_model

    args = parse_args(argv)
    started = time.perf_counter()
    ev = evaluation()
    datasets = {
        d: load_items(ev, d, n, args.seed) for d, n in (("kleister", args.kleister), ("aci", args.aci)) if n > 0
    }
    model_path = ensure_embedded_model(ROOT / "var/models")
    log(f"model={model_path.name} n_ctx={N_CTX} seed={args.seed} systems={','.join(args.systems)}")
    for d, items in datasets.items():
        log(f"{d}: {' '.join(item.name[:12] for item in items)}")
    outcomes: dict[tuple[str, str], list[Outcome]] = {}
    predictions = args.predictions.open("w", encoding="utf-8") if args.predictions else None
    threads: int | None = None
    for name in args.systems:
        t0 = time.perf_counter()
        try:
            system = open_system(name, model_path, threads, args)
        except Exception as e:  # noqa: BLE001 - a system that cannot start fails every document
            log(f"{name}: could not start ({error_code(e)})")
            for d, items in datasets.items():
                outcomes[(d, name)] = failed_outcomes(name, items, f"start_{error_code(e)}")
            continue
        threads = threads or system.threads
        log(f"{name}: loaded in {time.perf_counter() - t0:.1f} s, threads={system.threads}")
        try:
            for d, items in datasets.items():
                done = outcomes.setdefault((d, name), [])
                for i, item in enumerate(items, 1):
                    outcome = run_one(system, item, args.timeout)
                    done.append(outcome)
                    log(progress_line(i, len(items), outcome))
                    if predictions:
                        predictions.write(json.dumps(outcome.__dict__, ensure_ascii=False) + "\n")
                        predictions.flush()
        finally:
            system.close()
        log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
    if predictions:
        predictions.close()
    summaries = [summarize(ev, items, outcomes[(d, name)]) for d, items in datasets.items() for name in args.systems]
    print(f"documents: kleister={args.kleister} aci={args.aci} seed={args.seed} model={model_path.name} n_ctx={N_CTX}")
    print(f"threads={threads} wall_seconds={time.perf_counter() - started:.0f}")
    for row in format_table(summaries):
        print(row)
    for row in summary_lines(summaries):
        print(row)


if __name__ == "__main__":
    main()
