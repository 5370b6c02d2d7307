"""Names and versions the extraction schemas: `nda@1` resolves to the same model forever."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from schemas.clinical_note import ClinicalNote
from schemas.contract import Contract
from schemas.errors import UnknownSchemaError
from schemas.examples import (
    CLINICAL_DOCUMENT,
    CLINICAL_RECORD,
    CONTRACT_DOCUMENT,
    CONTRACT_RECORD,
    NDA_DOCUMENT,
    NDA_RECORD,
)
from schemas.nda import NDA


@dataclass(frozen=True)
class SchemaSpec:
    """A named, versioned extraction contract."""

    name: str
    version: int
    model: type[BaseModel]
    description: str
    example_document: str | None = None
    example_record: dict[str, Any] | None = None

    @property
    def ref(self) -> str:
        """The stable reference, e.g. `nda@1`."""
        return f"{self.name}@{self.version}"

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema handed to the grammar backend (validation-mode, as Pydantic emits it)."""
        return self.model.model_json_schema()

    def json_schema_text(self) -> str:
        """Canonical JSON text of the schema (stable key order for prompt prefix caching)."""
        return json.dumps(self.json_schema(), sort_keys=True, separators=(",", ":"))


_BUILTINS: tuple[SchemaSpec, ...] = (
    SchemaSpec(
        "nda",
        1,
        NDA,
        "Non-disclosure agreement: parties, effective date, jurisdiction, term.",
        NDA_DOCUMENT,
        NDA_RECORD,
    ),
    SchemaSpec("contract", 1, Contract, "Commercial contract clauses.", CONTRACT_DOCUMENT, CONTRACT_RECORD),
    SchemaSpec(
        "clinical_note",
        1,
        ClinicalNote,
        "Clinical encounter note (chart abstraction).",
        CLINICAL_DOCUMENT,
        CLINICAL_RECORD,
    ),
)


def list_schemas() -> list[SchemaSpec]:
    """Every built-in schema, newest version last."""
    return list(_BUILTINS)


def is_builtin(name: str) -> bool:
    """Whether `name` belongs to a built-in schema (such names are reserved: no tenant may register one)."""
    return any(s.name == name for s in _BUILTINS)


def get_schema(ref: str) -> SchemaSpec:
    """Resolve `name` (latest version) or `name@version`; unknown ones raise `UnknownSchemaError`."""
    name, _, version = ref.partition("@")
    matches = [s for s in _BUILTINS if s.name == name]
    if version:
        if not version.isdigit():
            raise UnknownSchemaError(f"schema version must be a whole number: {ref!r}")
        matches = [s for s in matches if s.version == int(version)]
    if not matches:
        known = ", ".join(s.ref for s in _BUILTINS)
        raise UnknownSchemaError(f"unknown schema {ref!r}; known: {known}")
    return max(matches, key=lambda s: s.version)
