"""`nda@1`: the fields of the Kleister-NDA labels."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import IsoDate, ShortText


class NDA(BaseModel):
    """Non-disclosure agreement. Absent fields are null (or an empty list): never guessed."""

    model_config = ConfigDict(extra="forbid", title="nda")

    parties: list[ShortText] = Field(
        default_factory=list,
        max_length=8,
        # Parties are defined once, in the preamble: later chunks only add signatories and defined terms.
        json_schema_extra={"x-merge": "first", "x-kind": "party"},
        description=(
            "The companies or people who make the agreement, named as in its opening paragraph;"
            " not signatories' titles, addresses or section headings."
        ),
    )
    effective_date: IsoDate | None = Field(
        default=None, description="Date the agreement takes effect (or is dated), as YYYY-MM-DD."
    )
    jurisdiction: ShortText | None = Field(
        default=None,
        json_schema_extra={"x-kind": "place"},
        description=(
            "State or country whose laws govern the agreement ('governed by the laws of ...');"
            " not a state of incorporation or an address."
        ),
    )
    term: ShortText | None = Field(
        default=None,
        json_schema_extra={"x-kind": "duration"},
        description="How long the agreement lasts, as written (a number of years or months).",
    )
