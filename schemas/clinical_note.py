"""`clinical_note@1`: chart abstraction of one encounter note."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import ShortText


class Medication(BaseModel):
    """A medication mentioned in the plan or history."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    dose: ShortText | None = Field(default=None, description="e.g. '20 mg'.")
    route: ShortText | None = Field(default=None, description="e.g. 'by mouth', 'IV'.")
    frequency: ShortText | None = Field(default=None, description="e.g. 'twice a day'.")


class Vitals(BaseModel):
    """Vital signs as written in the note."""

    model_config = ConfigDict(extra="forbid")

    blood_pressure: ShortText | None = Field(default=None, description="e.g. '120/80'.")
    heart_rate: ShortText | None = None
    temperature: ShortText | None = None
    respiratory_rate: ShortText | None = None
    oxygen_saturation: ShortText | None = None


class ClinicalNote(BaseModel):
    """Clinical encounter note. Absent fields are null (or an empty list): never guessed."""

    model_config = ConfigDict(extra="forbid", title="clinical_note")

    patient_age: int | None = Field(default=None, ge=0, le=130, description="Age in years.")
    patient_sex: Literal["female", "male", "other"] | None = None
    chief_complaint: ShortText | None = Field(default=None, description="Main reason for the visit.")
    diagnoses: list[ShortText] = Field(default_factory=list, max_length=20)
    medications: list[Medication] = Field(default_factory=list, max_length=20)
    allergies: list[ShortText] = Field(default_factory=list, max_length=10)
    vitals: Vitals | None = None
    procedures: list[ShortText] = Field(default_factory=list, max_length=10)
    follow_up: ShortText | None = Field(default=None, description="Follow-up plan, e.g. 'in 2 weeks'.")
