import uuid
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.schemas.organisation import Password
from app.schemas.text import single_line


class MemberRead(BaseModel):
    member_id: uuid.UUID
    email: str
    has_access: bool
    # Compare with the fingerprint the person sees on their profile before confirming access.
    fingerprint: str
    # False for an entry the service did not create (written into the database directly).
    authentic: bool
    appointed_on: date | None
    instructed_on: date | None
    instruction_document: str
    # The name the report form lists the person by, so a whistleblower can exclude them.
    published_name: str


class PublishedNameUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Empty: the form does not list the person.
    published_name: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=200), single_line
    ] = ""


class KeyRotationRead(BaseModel):
    # Only when the rotation replaced a recovery key from before recovery key pairs: shown
    # once, print it; the old one no longer opens anything.
    recovery_key: str | None = None


class MemberList(BaseModel):
    items: list[MemberRead]


class InviteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[EmailStr, Field(max_length=254)]


class AppointmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appointed_on: date | None = None
    instructed_on: date | None = None
    instruction_document: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=500), single_line
    ] = ""


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, Field(min_length=16, max_length=128)]
    password: Password


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Password


class RecoveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: Annotated[str, Field(min_length=3, max_length=40)]
    email: Annotated[str, Field(min_length=3, max_length=254)]
    recovery_key: Annotated[str, Field(min_length=40, max_length=200)]
    new_password: Password
