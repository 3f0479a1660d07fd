import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(min_length=3, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=256)]
    totp: Annotated[str | None, Field(max_length=16)] = None


class OrganisationBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    email_verified: bool


class MemberRead(BaseModel):
    id: uuid.UUID
    email: str
    totp_enabled: bool
    session_expires_at: datetime
    # Read it to a colleague who confirms your access on the team page.
    key_fingerprint: str
    organisations: list[OrganisationBrief]


class TotpSetupRead(BaseModel):
    secret: str
    otpauth_uri: str


class TotpCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=6, max_length=8)]
