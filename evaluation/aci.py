"""ACI-Bench: gold patient facts for clinical notes, and scoring a `clinical_note@1` record against them.

The metadata was written from the encounter, not from the note, so a gold value the note never
states cannot be asked of an extractor that reads only the note. Following the data README, each
gold value is checked against the note first and treated as not stated when the note lacks it:

- age: the number in digits or words ("50", "fifty", "50-year-old");
- sex: the word or a cue for it ("female", "woman", "she", "Mrs.");
- chief complaint: found verbatim, ignoring case and punctuation, or approximately, or every content
  word of it (three letters or more) occurs in the note.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evaluation.scoring import FieldScores
from workers.documents.model import Document, Page
from workers.pipeline.grounding import SourceIndex, normalize_text

ACI_FIELDS = ("patient_age", "patient_sex", "chief_complaint")
_STOPWORDS = frozenset("the and for with from of on in to at a an or".split())
CC_MIN_TOKEN_F1 = 0.67


def text_document(text: str) -> Document:
    """A one-page `Document` for a plain-text note (what a text upload reads into)."""
    data = text.encode("utf-8")
    return Document(
        text=text,
        pages=(Page(number=1, start=0, end=len(text)),),
        media_type="text/plain",
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
    )


def aci_splits(directory: Path) -> list[tuple[Path, Path]]:
    """(notes CSV, metadata CSV) pairs in a directory: `train.csv` with `train_metadata.csv`, etc."""
    pairs = []
    for meta in sorted(directory.glob("*_metadata.csv")):
        notes = meta.with_name(meta.name.removesuffix("_metadata.csv") + ".csv")
        if notes.is_file():
            pairs.append((notes, meta))
    return pairs


def _age(raw: str) -> int | None:
    try:
        return int(float(raw))
    except ValueError:
        return None


def _content_tokens(text: str) -> list[str]:
    return [t for t in normalize_text(text).split() if len(t) >= 3 and t not in _STOPWORDS]


def supported_gold(raw: dict[str, str], note: str, index: SourceIndex | None = None) -> dict[str, Any]:
    """The metadata row's age, sex and chief complaint, each kept only where the note supports it."""
    idx = index if index is not None else SourceIndex(text_document(note))
    gold: dict[str, Any] = dict.fromkeys(ACI_FIELDS)
    age = _age(raw.get("patient_age", "").strip())
    if age is not None and idx.locate(age)[1] in ("exact", "normalized"):
        gold["patient_age"] = age
    sex = raw.get("patient_gender", "").strip().lower()
    if sex in ("female", "male") and idx.locate(sex)[1] in ("exact", "normalized"):
        gold["patient_sex"] = sex
    cc = " ".join(raw.get("cc", "").split())
    if cc:
        note_tokens = set(normalize_text(note).split())
        content = _content_tokens(cc)
        if idx.locate(cc)[1] is not None or (content and all(t in note_tokens for t in content)):
            gold["chief_complaint"] = cc
    return gold


def load_aci(directory: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(encounter id, note text, supported gold) for every encounter of every split in the directory."""
    splits = aci_splits(directory)
    if not splits:
        raise FileNotFoundError(f"no ACI-Bench split (train.csv with train_metadata.csv) in {directory}")
    out: list[tuple[str, str, dict[str, Any]]] = []
    for notes_path, meta_path in splits:
        with meta_path.open(encoding="utf-8", newline="") as f:
            meta = {row["encounter_id"]: row for row in csv.DictReader(f)}
        with notes_path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                encounter = row["encounter_id"]
                note = row["note"]
                out.append((encounter, note, supported_gold(meta.get(encounter, {}), note)))
    return out


def clinical_record_to_gold_shape(data: dict[str, Any]) -> dict[str, Any]:
    """The fields of a `clinical_note@1` record that ACI-Bench labels, named as in `load_aci`'s gold."""
    age = data.get("patient_age")
    sex = data.get("patient_sex")
    cc = data.get("chief_complaint")
    return {
        "patient_age": age if isinstance(age, int) and not isinstance(age, bool) else None,
        "patient_sex": sex.strip().lower() if isinstance(sex, str) and sex.strip() else None,
        "chief_complaint": " ".join(cc.split()) if isinstance(cc, str) and cc.strip() else None,
    }


def _cc_tokens(text: str) -> list[str]:
    """Content words, plural "s" dropped: "abnormal labs" and "abnormal lab" share both words."""
    words = [t for t in normalize_text(text).split() if t not in _STOPWORDS]
    return [t[:-1] if len(t) > 3 and t.endswith("s") and not t.endswith("ss") else t for t in words]


def chief_complaint_matches(predicted: str, gold: str) -> bool:
    """Lenient match, ignoring case and punctuation: equal; one contains the other as whole words; or
    the F1 of their content words (stop words out, plurals folded) is at least 0.67.

    "right knee pain" matches "knee pain" and "pain in the right knee"; "knee pain" does not match
    "back pain" (F1 0.5): the labels are short paraphrases, but a different body site is wrong.
    """
    p, g = normalize_text(predicted), normalize_text(gold)
    if not p or not g:
        return False
    if p == g or f" {g} " in f" {p} " or f" {p} " in f" {g} ":
        return True
    p_tokens, g_tokens = _cc_tokens(predicted), _cc_tokens(gold)
    if not p_tokens or not g_tokens:
        return False
    common = sum(min(p_tokens.count(t), g_tokens.count(t)) for t in set(p_tokens))
    return 2 * common / (len(p_tokens) + len(g_tokens)) >= CC_MIN_TOKEN_F1


def field_matches(field: str, predicted: Any, gold: Any) -> bool:
    """Whether a stated prediction equals a stated gold value, by the field's rule."""
    if field == "chief_complaint":
        return chief_complaint_matches(str(predicted), str(gold))
    return bool(predicted == gold)


def score_aci(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, FieldScores]:
    """Per-field counts over (predicted gold-shape, gold) pairs.

    Not stated on both sides counts nothing; a prediction where gold is not stated is a false
    positive; a gold value not predicted is a false negative; a wrong value is both.
    """
    counts = {f: [0, 0, 0] for f in ACI_FIELDS}
    for predicted, gold in pairs:
        for field in ACI_FIELDS:
            p, g = predicted.get(field), gold.get(field)
            c = counts[field]
            if p is None and g is None:
                continue
            if p is None:
                c[2] += 1
            elif g is None:
                c[1] += 1
            elif field_matches(field, p, g):
                c[0] += 1
            else:
                c[1] += 1
                c[2] += 1
    return {f: FieldScores(*c) for f, c in counts.items()}
