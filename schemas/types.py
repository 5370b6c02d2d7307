"""Field types shared by the built-in schemas; `None` (or an empty list) always means "not stated"."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, Field


def _real_date(value: str) -> str:
    dt.date.fromisoformat(value)
    return value


IsoDate = Annotated[
    str,
    Field(pattern=r"^[12][0-9]{3}-[01][0-9]-[0-3][0-9]$", description="Calendar date as YYYY-MM-DD."),
    AfterValidator(_real_date),
]
"""A calendar date the model normalises to ISO form; grounding looks for its written forms."""

ShortText = Annotated[str, Field(min_length=1, max_length=300)]
"""A value copied from the document; capped so a runaway generation cannot bloat a record."""
