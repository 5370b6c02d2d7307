"""Values whose shape cannot be what their field holds, moved out of the record and flagged.

A small model copies the wrong span now and then: a defined term ("the Recipient") or a salutation
("Dear Ken") as a party, a governing-law clause's whole sentence as the jurisdiction, "until terminated"
as a term. Such a value is often found in the source, so grounding alone passes it. A schema opts its
fields in by kind (`json_schema_extra={"x-kind": ...}`):

- `party`: a person or organisation by name — not a role or defined term, not a salutation ("Ladies and
  Gentlemen"), not an address, not a description ("an Iowa corporation"), not a short form of another
  party of the same record ("TEVA" beside "Teva Pharmaceutical Industries Ltd."), not a sentence;
- `place`: a state or country's name — a few words, not a clause;
- `duration`: a length of time that can be read as N days, weeks, months or years.

Rejected values go to the record's `rejected` with an `implausible_value` flag, as unfound ones do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from workers.pipeline.grounding.variants import parse_duration

IMPLAUSIBLE = "implausible_value"

ROLE_WORDS = frozenset(
    "affiliate affiliates agent buyer client company competitor consultant contractor corporation counterparty "
    "customer discloser disclosee distributor employee employer executive holder investor licensee licensor "
    "member owner participant partner parties party purchaser recipient representative seller shareholder "
    "subsidiary supplier vendor".split()
)
"""Words that name a role in an agreement, not who plays it; with "disclosing party" and the like below."""

_ROLE_PHRASES = re.compile(
    r"^(the\s+)?((disclosing|receiving|other|each|either|both|first|second)\s+)?(part(y|ies)|"
    + "|".join(sorted(ROLE_WORDS))
    + r")s?$",
    re.IGNORECASE,
)
_ADDRESS = re.compile(
    r"^\d+[\w-]*\s+\w+|\b(street|st\.|avenue|ave\.|road|rd\.|suite|floor|boulevard|blvd\.?|p\.?\s?o\.?\s+box|"
    r"drive|dr\.|lane|parkway|plaza)(\s|$|,)",
    re.IGNORECASE,
)
_SALUTATION = re.compile(r"^(dear|hi|hello|attn:?|attention:?)\s|^(ladies and )?gentlemen\b|^sirs\b", re.IGNORECASE)
_CITY_STATE_ZIP = re.compile(r"\b[A-Z]{2},?\s+\d{5}(-\d{4})?\b")
"""The last line of a US address ("Deerfield, IL 60015")."""
_DESCRIPTION = re.compile(r"\s(corporation|company|partnership|limited liability company|limited partnership|bank)$")
"""A party described, not named: "an Iowa corporation" (a name capitalises its "Corporation"; the match is
case-sensitive on purpose)."""
_CLAUSE_WORDS = re.compile(
    r"\b(shall|hereby|hereof|hereto|herein|whereof|witness|agreement|governed|construed|accordance|signed|"
    r"undersigned|executed|laws)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9&]+")
MAX_PARTY_WORDS = 12
MAX_PLACE_WORDS = 6


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def _short_form(value: str, others: list[str]) -> bool:
    """Whether `value` abbreviates another, longer party: its words inside the other's, or its initials."""
    mine = _words(value)
    if not mine:
        return False
    for other in others:
        theirs = _words(other)
        if len(theirs) <= len(mine) or other == value:
            continue
        if all(w in theirs for w in mine):
            return True
        initials = "".join(w[0] for w in theirs if w not in ("and", "of", "the"))
        if len(mine) == 1 and len(mine[0]) >= 2 and initials.startswith(mine[0]):
            return True
    return False


def party_problem(value: str, others: list[str]) -> str | None:
    """Why `value` cannot be a party's name (None when it can)."""
    text = value.strip()
    if _ROLE_PHRASES.match(text):
        return "a role or defined term, not a name"
    if _SALUTATION.match(text):
        return "a salutation"
    if _ADDRESS.search(text) or _CITY_STATE_ZIP.search(text):
        return "an address"
    if _DESCRIPTION.search(text):
        return "a description, not a name"
    if len(_words(text)) > MAX_PARTY_WORDS or _CLAUSE_WORDS.search(text):
        return "a sentence, not a name"
    if _short_form(text, others):
        return "a short form of another party"
    return None


def place_problem(value: str) -> str | None:
    """Why `value` cannot be a state's or country's name."""
    if len(_words(value)) > MAX_PLACE_WORDS or _CLAUSE_WORDS.search(value):
        return "a clause, not a place"
    if not re.search(r"[A-Za-z]", value):
        return "no letters"
    return None


def duration_problem(value: str) -> str | None:
    """Why `value` cannot be read as a length of time."""
    return None if parse_duration(value) is not None else "not a length of time"


def field_kinds(schema: dict[str, Any]) -> dict[str, str]:
    """Top-level field -> kind, for fields (or their list items) that declare one."""
    out: dict[str, str] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        kind = prop.get("x-kind")
        if kind is None:
            for option in prop.get("anyOf") or []:
                if isinstance(option, dict) and option.get("x-kind"):
                    kind = option["x-kind"]
        if isinstance(kind, str):
            out[name] = kind
    return out


def field_values(data: dict[str, Any], field: str) -> Iterator[tuple[str, str]]:
    """(path, value) for a field's string value, or for each string item of its list."""
    value = data.get(field)
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield f"{field}.{i}", item


def implausible(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, str]:
    """Path -> reason for every value of a kind-declaring field that cannot be of its kind."""
    out: dict[str, str] = {}
    for field, kind in field_kinds(schema).items():
        values = list(field_values(data, field))
        for path, value in values:
            if kind == "party":
                problem = party_problem(value, [v for p, v in values if p != path])
            elif kind == "place":
                problem = place_problem(value)
            elif kind == "duration":
                problem = duration_problem(value)
            else:
                problem = None
            if problem is not None:
                out[path] = problem
    return out
