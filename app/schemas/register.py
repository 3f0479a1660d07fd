import uuid
from datetime import date
from typing import Literal

from pydantic import BaseModel


class RegisterRowRead(BaseModel):
    """One row of the § 21 register; identity fields are null for an anonymous report."""

    report_id: uuid.UUID
    organisation: str
    organisation_name: str
    reference: str
    received_on: date
    name: str | None
    birth_date: date | None
    contact_address: str | None
    other_identity: str | None
    summary: str
    person_concerned: str | None
    assessed_on: date | None
    outcome: Literal["valid", "not_valid", "not_a_report"] | None


class RegisterList(BaseModel):
    items: list[RegisterRowRead]
    # Reports withheld from this designated person: only others can read them.
    withheld: int = 0
