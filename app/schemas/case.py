import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.report import AttachmentRead, MessageRead, RecordRead, ReportCreate
from app.schemas.text import multi_line, single_line
from app.services.deadlines import CZECH
from app.vocabulary import (
    Completeness,
    MeasureKind,
    Outcome,
    Priority,
    RecordedChannel,
    RetaliationRisk,
    WaiveReason,
)

Body = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000), multi_line
]
OptionalBody = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=20000), multi_line
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500), multi_line
]


class CaseSummary(BaseModel):
    """A case as the list shows it: metadata only, nothing decrypted."""

    id: uuid.UUID
    organisation: str
    reference: str
    status: str
    outcome: str | None
    channel: str
    received_at: datetime
    acknowledge_by: date | None
    assess_by: date
    assess_by_unshifted: date
    meeting_by: date | None
    extensions: int
    overdue: bool
    next_deadline: date | None
    # The last day of the five-year retention; a case on legal hold is kept past it.
    retain_until: date
    legal_hold: bool


class RecordedReportCreate(ReportCreate):
    """A report received by telephone, in person or by post, recorded by a designated person."""

    channel: RecordedChannel
    received_on: date | None = None
    recording_consent: bool | None = None


class RecordedReportCreated(BaseModel):
    id: uuid.UUID
    reference: str
    tracking_code: str
    tracking_url: str


class IdentityUpdate(BaseModel):
    """The whistleblower revealed who they are after the report."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), single_line
    ]
    birth_date: date | None = None
    contact_address: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=500), multi_line
    ] = ""


class MeetingPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: datetime
    place: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), single_line
    ]
    message: OptionalBody = ""
    # Needed for a meeting after the 14-day deadline, e.g. the whistleblower's own wish.
    late_reason: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=500), multi_line
    ] = ""


class Triage(BaseModel):
    """ISO 37002 triage of a case, kept sealed with it."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority = Priority.NORMAL
    completeness: Completeness = Completeness.COMPLETE
    retaliation_risk: RetaliationRisk = RetaliationRisk.LOW
    protection_plan: OptionalBody = ""


class CaseList(BaseModel):
    items: list[CaseSummary]
    total: int
    limit: int
    offset: int


class MeasureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MeasureKind = MeasureKind.TAKEN
    body: Body
    tell_whistleblower: bool = True


class MeasureRead(BaseModel):
    id: uuid.UUID
    kind: MeasureKind
    body: str
    created_at: datetime
    member_id: uuid.UUID | None
    told_whistleblower: bool


class NoteRead(BaseModel):
    id: uuid.UUID
    body: str
    created_at: datetime
    member_id: uuid.UUID | None


class ExclusionRead(BaseModel):
    """That the whistleblower excluded designated persons: how many, and their names only if
    the whistleblower chose to say them."""

    count: int
    names: list[str]


class CaseRead(CaseSummary):
    """One case, decrypted for a designated person."""

    report: ReportCreate
    messages: list[MessageRead]
    attachments: list[AttachmentRead]
    notes: list[NoteRead]
    measures: list[MeasureRead]
    acknowledgement_waived: str | None
    no_acknowledgement: bool
    meeting_requested: bool
    meeting_planned_at: datetime | None
    meeting_late_reason: str | None
    # Planned past its deadline and not yet held.
    meeting_late: bool
    record: RecordRead | None
    triage: Triage | None
    legal_hold_reason: str | None
    # The register's summary (§ 21): as a designated person wrote it, else the report's first lines.
    register_summary: str
    register_summary_written: bool
    # Set when the whistleblower excluded someone: only the persons sealed to can read it.
    exclusion: ExclusionRead | None = None


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: OptionalBody = ""
    # Instead of acknowledging: one of the two statutory reasons not to.
    waive: WaiveReason | None = None


class SummaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000), multi_line
    ]


class LegalHoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]


class ExtendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Body
    # "By up to 30 days" (§ 12 (3)): the designated person chooses how long.
    days: int = Field(default=CZECH.extension_days, ge=1, le=CZECH.extension_days)


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    message: OptionalBody = ""


class BodyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Body


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID


class AccessReason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
