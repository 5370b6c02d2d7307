"""`contract@1`: the clauses a legal department abstracts from a commercial contract."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import IsoDate, ShortText


class ContractParty(BaseModel):
    """A party as named in the contract."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText = Field(description="Legal name as written.")
    role: ShortText | None = Field(default=None, description="Role, e.g. 'Supplier', 'Customer', 'Licensee'.")


class Contract(BaseModel):
    """Commercial contract. Absent fields are null (or an empty list): never guessed."""

    model_config = ConfigDict(extra="forbid", title="contract")

    parties: list[ContractParty] = Field(
        default_factory=list, max_length=8, json_schema_extra={"x-merge": "first"}
    )  # defined once, in the preamble
    effective_date: IsoDate | None = Field(default=None, description="Date the contract takes effect.")
    term: ShortText | None = Field(default=None, description="Duration as written, e.g. '2 years'.")
    governing_law: ShortText | None = Field(default=None, description="Governing law, e.g. 'Delaware'.")
    termination: ShortText | None = Field(default=None, description="How either party may terminate.")
    payment_terms: ShortText | None = Field(default=None, description="Amounts and payment schedule.")
    confidentiality: ShortText | None = Field(default=None, description="Confidentiality obligation.")
    renewal: ShortText | None = Field(default=None, description="Renewal or extension clause.")
