"""The forms a value may be written in: normalised words, numbers in words, durations, dates, typed cues.

`normalize_text` makes case, whitespace and punctuation irrelevant; `variant_tiers` lists a typed value's
other spellings (an ISO date as "April 18, 2001", 50 as "fifty", "female" as "she", "3 years" as "three
(3) years"), strongest tier first, for the index to search in that order.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

# A dotted abbreviation ("L.L.C.", "U.S.") is one token, so it equals its undotted spelling
# ("LLC"); initials apart ("R. J.") or before a word ("J.Smith") stay tokens of their own.
TOKEN = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_](?![^\W_])\.?|[^\W_]+|&")


def norm_token(tok: str) -> str:
    """One token's normalised form: lower case, an abbreviation's dots dropped, accents folded, `&` as `and`."""
    if tok == "&":
        return "and"
    if "." in tok:
        tok = "".join(c for c in tok if c.isalnum())
    if tok.isascii():
        return tok.lower()
    folded = "".join(c for c in unicodedata.normalize("NFKD", tok) if not unicodedata.combining(c))
    folded = "".join(folded.casefold().split())
    return folded or tok.lower()


def normalize_text(text: str) -> str:
    """Lower-case words separated by single spaces: case, whitespace and punctuation no longer matter."""
    return " ".join(norm_token(m.group()) for m in TOKEN.finditer(text))


# --------------------------------------------------------------------------- numbers and durations

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_ONES = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()
_ORDINAL_TENS = "_ _ twentieth thirtieth".split()
_WORD_VALUES: dict[str, int] = {w: i for i, w in enumerate(_ONES)} | {w: 10 * i for i, w in enumerate(_TENS) if i >= 2}
_NUMBER_WORDS = frozenset(_WORD_VALUES) | {"hundred", "thousand", "and"}
_UNITS = {
    "year": "year",
    "years": "year",
    "yr": "year",
    "yrs": "year",
    "month": "month",
    "months": "month",
    "week": "week",
    "weeks": "week",
    "day": "day",
    "days": "day",
}


def number_to_words(n: int) -> str:
    """English words for a whole number below a million ("fifty-one"); larger ones stay digits."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return f"{number_to_words(thousands)} thousand" + (f" {number_to_words(rest)}" if rest else "")
    return str(n)


def words_to_number(words: Sequence[str]) -> int | None:
    """The value of number words such as ["twenty", "four"]; None when any word is not a number word."""
    total = current = 0
    seen = False
    for word in words:
        if word == "and":
            continue
        if word in _WORD_VALUES:
            current += _WORD_VALUES[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


def _ordinal_suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _ordinal_words(n: int) -> str:
    if n < 20:
        return _ORDINAL_ONES[n]
    tens, ones = divmod(n, 10)
    if not ones:
        return _ORDINAL_TENS[tens] if tens < len(_ORDINAL_TENS) else f"{_TENS[tens]}ieth"
    return f"{_TENS[tens]}-{_ORDINAL_ONES[ones]}"


def parse_duration(text: str) -> tuple[int, str] | None:
    """The first "N unit" in a text as (N, unit): "three (3) years" -> (3, "year"); None if there is none."""
    tokens = [t.lower() for t in re.findall(r"[A-Za-z]+|\d+", text)]
    for i, token in enumerate(tokens):
        unit = _UNITS.get(token)
        if unit is None or i == 0:
            continue
        before = tokens[i - 1]
        if before.isdigit():
            return int(before), unit
        k = i - 1
        while k >= 0 and tokens[k] in _NUMBER_WORDS:
            k -= 1
        value = words_to_number(tokens[k + 1 : i])
        if value:
            return value, unit
        if before in ("a", "an"):
            return 1, unit
    return None


def _duration_forms(n: int, unit: str) -> list[str]:
    word = number_to_words(n)
    forms = []
    for u in (unit, unit + "s"):
        forms += [f"{n} {u}", f"{word} ({n}) {u}", f"{word} {u}"]
    return forms


# --------------------------------------------------------------------------- typed variants

_LEGAL_SUFFIXES = {
    "inc": ["incorporated"],
    "incorporated": ["inc"],
    "ltd": ["limited"],
    "limited": ["ltd"],
    "corp": ["corporation"],
    "corporation": ["corp"],
    "co": ["company"],
    "company": ["co"],
}
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH_ABBR = {9: "Sept"}
_SEX_CUES = {
    "female": [
        "female",
        "woman",
        "women",
        "she",
        "her",
        "hers",
        "herself",
        "mrs",
        "ms",
        "miss",
        "girl",
        "lady",
    ],
    "male": ["male", "man", "men", "he", "him", "his", "himself", "mr", "boy", "gentleman"],
}


def _date_tiers(day: dt.date) -> list[list[str]]:
    month = day.strftime("%B")
    abbr = _MONTH_ABBR.get(day.month, month[:3])
    d, m, y = day.day, day.month, day.year
    yy = f"{y % 100:02d}"
    dth, dword = _ordinal_suffix(d), _ordinal_words(d)
    full = [
        f"{month} {d}, {y}",
        f"{month} {dth}, {y}",
        f"{abbr}. {d}, {y}",
        f"{d} {month} {y}",
        f"{dth} {month} {y}",
        f"{d} {abbr} {y}",
        f"{dth} day of {month}, {y}",
        f"{d} day of {month}, {y}",
        f"{dword} day of {month}, {y}",
        f"{dth} of {month}, {y}",
        f"{m}/{d}/{y}",
        f"{m:02d}/{d:02d}/{y}",
        f"{m}/{d}/{yy}",
        f"{m:02d}/{d:02d}/{yy}",
    ]
    # The day and month without a year, or the month and year without a day: weaker, so tried later.
    partial = [f"{month} {d}", f"{month} {dth}", f"{dth} day of {month}", f"{month} {y}", f"{abbr}. {y}"]
    return [full, partial]


def variant_tiers(value: Any) -> list[list[str]]:
    """Written forms of a typed value, strongest tier first; every form is searched normalised."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [[number_to_words(value)]] if 0 <= value < 1_000_000 else []
    if isinstance(value, float):
        return [[number_to_words(int(value))]] if value.is_integer() and 0 <= value < 1_000_000 else []
    if not isinstance(value, str):
        return []
    text = value.strip()
    if m := ISO_DATE.match(text):
        try:
            return _date_tiers(dt.date(int(m[1]), int(m[2]), int(m[3])))
        except ValueError:
            return []
    if text.lower() in _SEX_CUES:
        return [_SEX_CUES[text.lower()]]
    if text.isdigit() and len(text) <= 6:
        return [[number_to_words(int(text))]]
    duration = parse_duration(text)
    if duration is not None and len(text.split()) <= 6:
        n, unit = duration
        tiers = [_duration_forms(n, unit)]
        if unit == "year":
            tiers.append(_duration_forms(n * 12, "month"))
        elif unit == "month" and n % 12 == 0:
            tiers.append(_duration_forms(n // 12, "year"))
        return tiers
    words = normalize_text(text).split()
    if len(words) > 1 and words[-1] in _LEGAL_SUFFIXES:
        return [[" ".join([*words[:-1], other]) for other in _LEGAL_SUFFIXES[words[-1]]]]
    return []


def as_text(value: Any) -> str | None:
    """The text a scalar is searched as; None for what is not searched (None, booleans, containers, blanks)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value).strip() or None
    return None
