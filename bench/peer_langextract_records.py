"""The langextract peer's task (prompt and few-shot examples per schema) and the mapping of its extractions onto
our schemas' records, so our scorers score it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

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
