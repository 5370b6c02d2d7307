"""Party names completed from the source: the legal form a small model leaves off, put back.

Preambles write "NIKE, Inc.", "Gilead Sciences, Inc." and "Acme Holdings, L.L.C.": the comma before the
legal form reads like the end of the name, and a 0.5B model often stops there ("NIKE"). The legal form
is part of the entity's name (it tells "Acme, Inc." from "Acme LLC"), so where the document itself
writes the value followed by a legal form, the value is extended to include it. Nothing is invented:
the completed value is a span of the source, and it is grounded like any other.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from workers.pipeline.plausibility import field_kinds, field_values

LEGAL_FORMS = (
    r"Inc\.?|Incorporated|L\.?L\.?C\.?|L\.?L\.?P\.?|L\.?P\.?|Ltd\.?|Limited|Corp\.?|Corporation|Co\.|"
    r"P\.?L\.?C\.?|plc|N\.V\.|B\.V\.|S\.A\.|S\.A\.S\.|AG|GmbH|S\.p\.A\.|Pty\.? Ltd\.?|P\.C\.|PLLC"
)
_LEGAL_FORM = re.compile(rf"^,?[ \t]*\n?[ \t]*(?:{LEGAL_FORMS})(?![A-Za-z])", re.IGNORECASE)
_ENDS_WITH_FORM = re.compile(rf"(?:^|[\s,])(?:{LEGAL_FORMS})$", re.IGNORECASE)
MAX_NAME_CHARS = 200
"""Longer values are not names (plausibility rejects them); they are left as they are."""
MAX_OCCURRENCES = 50
"""Occurrences of one value looked at; a name is stated in full within its first few."""


def legal_form_after(value: str, text: str) -> str | None:
    """The value with the legal form the source writes right after it most often, or None.

    Only whole-word occurrences count ("Acme" inside "Acmeware" does not), and the form is taken as
    the source spells it, whitespace collapsed.
    """
    if not value.strip() or len(value) > MAX_NAME_CHARS or _ENDS_WITH_FORM.search(value.strip()):
        return None
    seen: Counter[str] = Counter()
    pattern = re.compile(rf"(?<![\w]){re.escape(value.strip())}(?![\w])")
    for n, match in enumerate(pattern.finditer(text)):
        if n >= MAX_OCCURRENCES:
            break
        form = _LEGAL_FORM.match(text[match.end() : match.end() + 40])
        if form:
            seen[" ".join(form.group().split())] += 1
    if not seen:
        return None
    suffix = seen.most_common(1)[0][0]
    return value.strip() + ("" if suffix.startswith(",") else " ") + suffix


def complete_party_names(data: dict[str, Any], schema: dict[str, Any], text: str) -> dict[str, Any]:
    """A copy of the record whose party-kind values carry the legal form the source gives them."""
    out = dict(data)
    for field, kind in field_kinds(schema).items():
        if kind != "party":
            continue
        for path, value in list(field_values(data, field)):
            completed = legal_form_after(value, text)
            if completed is None:
                continue
            if "." in path:
                items = list(out[field])
                items[int(path.rsplit(".", 1)[1])] = completed
                out[field] = items
            else:
                out[field] = completed
    return out
