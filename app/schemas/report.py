import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from app.i18n import N_
from app.schemas.text import multi_line, single_line

CATEGORIES = {
    "criminal_offence": N_("A criminal offence"),
    "misdemeanour": N_("A misdemeanour with a fine of at least CZK 100,000"),
    "whistleblower_act": N_("A breach of the Whistleblower Protection Act"),
    "financial_services": N_("Financial services, accounting, anti-money laundering"),
    "public_procurement": N_("Public procurement"),
    "competition": N_("Competition and state aid"),
    "tax": N_("Taxes and the EU's financial interests"),
    "environment": N_("Environment, radiation and nuclear safety"),
    "safety": N_("Product, transport and food safety, animal health"),
    "public_health": N_("Public health"),
    "consumer_protection": N_("Consumer protection"),
    "privacy": N_("Privacy, personal data and network security"),
    "other": N_("Something else"),
}
RELATIONSHIPS = {
    "employee": N_("Employee"),
    "former_employee": N_("Former employee"),
    "applicant": N_("Job applicant"),
    "contractor": N_("Contractor or supplier"),
    "volunteer": N_("Volunteer or trainee"),
    "other": N_("Other"),
}
Category = Literal[
    "criminal_offence", "misdemeanour", "whistleblower_act", "financial_services",
    "public_procurement", "competition", "tax", "environment", "safety", "public_health",
    "consumer_protection", "privacy", "other",
]  # fmt: skip
Relationship = Literal[
    "employee", "former_employee", "applicant", "contractor", "volunteer", "other"
]


ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), single_line]
MediumText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), multi_line]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000), multi_line
]


class ReportCreate(BaseModel):
    """What a whistleblower submits; every field is sealed under the report key."""

    model_config = ConfigDict(extra="forbid")

    description: LongText
    category: Category | None = None
    occurred_at: ShortText | None = None
    location: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), single_line] | None
    ) = None
    # § 21 (1) c): the person against whom the report is directed, apart from the witnesses.
    person_concerned: MediumText | None = None
    persons_involved: MediumText | None = None
    relationship: Relationship | None = None
    anonymous: bool = True
    name: ShortText | None = None
    birth_date: date | None = None
    contact_address: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), multi_line] | None
    ) = None
    phone: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=50), single_line] | None
    ) = None
    email: Annotated[EmailStr, Field(max_length=254)] | None = None
    no_acknowledgement: bool = False
    meeting_requested: bool = False


class ReportSubmit(ReportCreate):
    """A report as the form sends it, with the designated persons the whistleblower excludes.

    The exclusion is not part of the sealed report: whom it names is kept apart (keyed hashes),
    and by name only when `name_excluded` is set.
    """

    # Member ids, as the form lists them (`GET /api/v1/public/{slug}/designated-persons`).
    exclude: list[uuid.UUID] = Field(default_factory=list, max_length=20)
    # Tell the remaining designated persons whom the report excludes (by published name).
    name_excluded: bool = False

    def content(self) -> ReportCreate:
        return ReportCreate(**self.model_dump(exclude={"exclude", "name_excluded"}))


class DesignatedPersonRead(BaseModel):
    member_id: uuid.UUID
    name: str


class DesignatedPersonList(BaseModel):
    """The designated persons a whistleblower may exclude; empty when exclusion is not offered."""

    items: list[DesignatedPersonRead]


class ReportCreated(BaseModel):
    tracking_code: str
    tracking_url: str
    received_at: datetime


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: LongText


class AttachmentRead(BaseModel):
    id: str
    name: str
    content_type: str
    size: int
    uploaded_by: str
    created_at: datetime


class MessageRead(BaseModel):
    id: str
    author: str
    body: str
    created_at: datetime
    attachments: list[AttachmentRead]


class RecordComment(BaseModel):
    """The whistleblower's comments on the record, as stored on one day; never overwritten."""

    text: LongText
    # None for comments stored before they were dated.
    at: datetime | None = None
    # Written down by a designated person, or sent by the whistleblower from the tracking page.
    by: Literal["member", "whistleblower"] = "member"


class RecordRead(BaseModel):
    """The record of a report taken down by a designated person."""

    model_config = ConfigDict(extra="forbid")

    recording_consent: bool | None = None
    comments: list[RecordComment] = []

    @field_validator("comments", mode="before")
    @classmethod
    def _one_text_of_earlier_versions(cls, value: object) -> object:
        if isinstance(value, str):
            return [{"text": value}] if value.strip() else []
        return value


class ReportSelfRead(BaseModel):
    """The whistleblower's view of their case."""

    organisation: str
    status: str
    received_at: datetime
    acknowledgement_due_on: date | None
    assessment_due_on: date
    meeting_requested: bool
    meeting_due_on: date | None
    meeting_planned_at: datetime | None
    # The record of a report taken down by a designated person, which the whistleblower may
    # comment on.
    record: RecordRead | None
    report: ReportCreate
    messages: list[MessageRead]
    attachments: list[AttachmentRead]
