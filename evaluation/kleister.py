"""Kleister-NDA: its gold labels, and the conversion of an `nda@1` record into the same label strings.

Gold labels are `key=value` strings (`effective_date=2001-04-18`, `jurisdiction=New_York`,
`party=Nike_Inc.`, `term=2_years`) with spaces and colons written `_`; the official metric is F1
over upper-cased labels, micro-averaged over all documents. Looking at the gold labels shows how
values are normalised, and `nda_record_to_labels` follows the same conventions:

- party: the name without commas or parentheticals; `&` is written `and`; corporate suffixes are
  abbreviated with a period (`Incorporated` -> `Inc.`, `Limited` -> `Ltd.`, `Co.`, `Corp.`; but
  `Corporation` and `Company` stay whole) while `LLC`/`LP` have none (`L.L.C.` -> `LLC`); a person's
  degrees are left off (`Maher Albitar, M.D.` -> `Maher_Albitar`, but `John J. Donahoe II` keeps `Ii`), and so
  is a trade name (`Tyco Healthcare Group LP d/b/a Covidien` -> `Tyco_Healthcare_Group_LP`); each word
  is capitalised (`Gtcr_LLC`, `Heritage_Bank_Of_Nevada`), which F1(UC) ignores anyway;
- jurisdiction: the US state's name alone (`State of New York` -> `New_York`);
- term: a number and a unit, `N_years`, `N_months`, `N_days` (`one (1) year` -> `1_year`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evaluation.scoring import FieldScores, score_label_sets
from workers.pipeline.grounding import parse_duration

KLEISTER_FIELDS = ("effective_date", "jurisdiction", "party", "term")
LABELS_FILE = "labels.tsv"

_STATES_AND_CODES = (
    "Alabama:AL Alaska:AK Arizona:AZ Arkansas:AR California:CA Colorado:CO Connecticut:CT Delaware:DE "
    "Florida:FL Georgia:GA Hawaii:HI Idaho:ID Illinois:IL Indiana:IN Iowa:IA Kansas:KS Kentucky:KY "
    "Louisiana:LA Maine:ME Maryland:MD Massachusetts:MA Michigan:MI Minnesota:MN Mississippi:MS "
    "Missouri:MO Montana:MT Nebraska:NE Nevada:NV New_Hampshire:NH New_Jersey:NJ New_Mexico:NM "
    "New_York:NY North_Carolina:NC North_Dakota:ND Ohio:OH Oklahoma:OK Oregon:OR Pennsylvania:PA "
    "Rhode_Island:RI South_Carolina:SC South_Dakota:SD Tennessee:TN Texas:TX Utah:UT Vermont:VT "
    "Virginia:VA Washington:WA West_Virginia:WV Wisconsin:WI Wyoming:WY District_of_Columbia:DC"
)
_STATE_CODES = {code: name.replace("_", " ") for name, code in (pair.split(":") for pair in _STATES_AND_CODES.split())}
US_STATES = tuple(_STATE_CODES.values())
_STATE_ABBREVIATIONS = {
    "del": "Delaware",
    "calif": "California",
    "mass": "Massachusetts",
    "penn": "Pennsylvania",
}
_STATE_PATTERN = re.compile(
    r"\b(" + "|".join(re.escape(s) for s in sorted(US_STATES, key=len, reverse=True)) + r")\b", re.IGNORECASE
)
_JURISDICTION_NOISE = re.compile(
    r"\b(?:the|laws?|of|state|commonwealth|province|courts?|governed|by|under|in|federal)\b",
    re.IGNORECASE,
)
_KEEP_UPPER = {"LLC", "LP", "LLP"}
_SUFFIX_PERIOD = {
    "inc": "Inc.",
    "incorporated": "Inc.",
    "ltd": "Ltd.",
    "limited": "Ltd.",
    "corp": "Corp.",
    "co": "Co.",
}
_POST_NOMINALS = frozenset({"m.d.", "m.d", "md", "ph.d.", "ph.d", "phd", "esq.", "esq", "d.o.", "cpa"})
"""Degrees and titles after a person's name, which the labels leave off ("Maher Albitar, M.D." -> "Maher_Albitar")."""
_TRADE_NAME = re.compile(r"\s+d/b/a\s+", re.IGNORECASE)
"""Where a trade name follows the entity's own; the labels name the entity ("X LP d/b/a Y" -> "X LP")."""
_SUFFIX_FORMS = {"l.l.c.": "LLC", "l.l.c": "LLC", "l.p.": "LP", "l.p": "LP", "l.l.p.": "LLP"}


def label_value(text: str) -> str:
    """A value as the labels write it: whitespace runs and colons become `_`."""
    return re.sub(r"[\s:]+", "_", text.strip())


def _case_word(word: str) -> str:
    if word.upper() in _KEEP_UPPER:
        return word.upper()
    if word.lower() == "and":
        return "and"
    out: list[str] = []
    cap_next = True
    for ch in word.lower():
        if ch.isalnum():
            out.append(ch.upper() if cap_next and ch.isalpha() else ch)
            cap_next = False
        else:
            out.append(ch)
            cap_next = cap_next or ch in "-."
    return "".join(out)


def normalize_party(name: str) -> str:
    """A party name in the labels' spelling (before `_` escaping): "NIKE, Inc." -> "Nike Inc."."""
    text = re.sub(r"\([^)]*\)", " ", name)
    text = _TRADE_NAME.split(text, maxsplit=1)[0]
    text = text.replace("&", " and ").replace(",", " ").replace("’", "'")
    words = text.split()
    while len(words) > 2 and words[-1].lower() in _POST_NOMINALS:
        words.pop()
    out: list[str] = []
    for word in words:
        lower = word.lower()
        if lower in _SUFFIX_FORMS:
            out.append(_SUFFIX_FORMS[lower])
        elif lower in _SUFFIX_PERIOD:
            out.append(_SUFFIX_PERIOD[lower])
        else:
            out.append(_case_word(word))
    if out:
        last = out[-1].rstrip(";:")
        # A sentence's full stop is not part of a name; an abbreviation's period ("Inc.", "U.S.") is.
        if last.endswith(".") and len(last) > 5 and "." not in last[:-1]:
            last = last[:-1]
        out[-1] = last
    return " ".join(w for w in out if w)


def normalize_jurisdiction(text: str) -> str:
    """The governing state's name ("the laws of the State of New York" -> "New York"), else the place."""
    matches = list(_STATE_PATTERN.finditer(text))
    if matches:
        first = min(matches, key=lambda m: (m.start(), -len(m.group())))
        return next(s for s in US_STATES if s.lower() == first.group().lower())
    bare = re.sub(r"[^A-Za-z ]", "", text).strip()
    if bare.upper() in _STATE_CODES and len(bare) == 2:
        return _STATE_CODES[bare.upper()]
    if bare.lower() in _STATE_ABBREVIATIONS:
        return _STATE_ABBREVIATIONS[bare.lower()]
    place = " ".join(_JURISDICTION_NOISE.sub(" ", text).replace(",", " ").split())
    return " ".join(_case_word(w) for w in place.split()) or text.strip()


def normalize_term(text: str) -> str:
    """A duration as `N years`, `N months`, `N days` ("three (3) years" -> "3 years"); else as written."""
    duration = parse_duration(text)
    if duration is None:
        return text.strip()
    n, unit = duration
    return f"{n} {unit}" + ("" if n == 1 else "s")


def nda_record_to_labels(data: dict[str, Any]) -> list[str]:
    """Kleister label strings for an `nda@1` record (`parties`, `effective_date`, `jurisdiction`, `term`)."""
    labels: list[str] = []
    date = data.get("effective_date")
    if isinstance(date, str) and date.strip():
        try:
            labels.append(f"effective_date={dt.date.fromisoformat(date.strip()).isoformat()}")
        except ValueError:
            labels.append(f"effective_date={label_value(date)}")
    jurisdiction = data.get("jurisdiction")
    if isinstance(jurisdiction, str) and jurisdiction.strip():
        labels.append(f"jurisdiction={label_value(normalize_jurisdiction(jurisdiction))}")
    seen: set[str] = set()
    for party in data.get("parties") or []:
        if not isinstance(party, str):
            continue
        value = label_value(normalize_party(party))
        if value and value.upper() not in seen:
            seen.add(value.upper())
            labels.append(f"party={value}")
    term = data.get("term")
    if isinstance(term, str) and term.strip():
        labels.append(f"term={label_value(normalize_term(term))}")
    return labels


def labels_to_nda_record(labels: Sequence[str]) -> dict[str, Any]:
    """The `nda@1` record a perfect extractor would give for these gold labels (`_` read as a space)."""
    record: dict[str, Any] = {"parties": [], "effective_date": None, "jurisdiction": None, "term": None}
    for label in labels:
        key, _, value = label.partition("=")
        text = value.replace("_", " ")
        if key == "party":
            record["parties"].append(text)
        elif key == "effective_date":
            record["effective_date"] = value
        elif key in ("jurisdiction", "term"):
            record[key] = text
    return record


def parse_labels(field: str) -> list[str]:
    """The labels of one `labels.tsv` line's second column."""
    return field.split()


def kleister_labels_path(directory: Path) -> Path | None:
    """`labels.tsv` in the directory or in its `train/` folder, if either has one."""
    for candidate in (directory / LABELS_FILE, directory / "train" / LABELS_FILE):
        if candidate.is_file():
            return candidate
    return None


def load_kleister(directory: Path) -> list[tuple[Path, list[str]]]:
    """(PDF path, gold labels) for every line of the set's `labels.tsv`; a missing PDF is an error."""
    path = kleister_labels_path(directory)
    if path is None:
        raise FileNotFoundError(f"no {LABELS_FILE} in {directory} or its train/ folder")
    out: list[tuple[Path, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        name, _, labels = line.partition("\t")
        pdf = path.parent / name.strip()
        if not pdf.is_file():
            raise FileNotFoundError(f"{pdf.name} is listed in {path.name} but missing")
        out.append((pdf, parse_labels(labels)))
    return out


def score_kleister(pairs: Iterable[tuple[Sequence[str], Sequence[str]]]) -> dict[str, FieldScores]:
    """Per-field counts over documents of (predicted labels, gold labels), compared upper-cased."""
    return score_label_sets(pairs, fields=KLEISTER_FIELDS, upper=True)
