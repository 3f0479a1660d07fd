import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey, utcnow
from app.vocabulary import CaseStatus, Channel


class Report(UUIDPrimaryKey, Base):
    """A report and its case metadata; everything the whistleblower wrote is sealed.

    The metadata (dates, status, outcome) serves the case list and the deadlines without
    decrypting anything.
    """

    __tablename__ = "report"
    __table_args__ = (UniqueConstraint("organisation_id", "reference_year", "reference_number"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    # Per organisation and year, e.g. 2026-0007.
    reference_year: Mapped[int] = mapped_column(Integer)
    reference_number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20), default=Channel.WEB)
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.RECEIVED)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    acknowledgement_due_on: Mapped[date | None]
    assessment_due_on: Mapped[date]
    # The assessment deadline before a weekend or holiday moved it: the safe target.
    assessment_unshifted_on: Mapped[date | None]
    meeting_due_on: Mapped[date | None]
    acknowledged_at: Mapped[datetime | None]
    # One of the two statutory reasons for not acknowledging, when a designated person waived it.
    acknowledgement_waived: Mapped[str | None] = mapped_column(String(40))
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(20))
    decided_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    @property
    def reference(self) -> str:
        return f"{self.reference_year}-{self.reference_number:04d}"

    meeting_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    no_acknowledgement: Mapped[bool] = mapped_column(Boolean, default=False)
    # Keyed hash of the normalised tracking code: the code itself is never stored.
    tracking_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # The report key, sealed (HPKE) to the organisation and under the tracking code. None for a
    # report that excludes a designated person: it is sealed to each remaining person instead
    # (ReportRecipient) and to the organisation's recovery key pair.
    key_for_organisation: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The organisation key version `key_for_organisation` is sealed to.
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    key_for_whistleblower: Mapped[bytes] = mapped_column(LargeBinary)
    # The form's fields as JSON, sealed under the report key.
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary)
    # For a report taken down by a designated person (telephone, in person, post): consent to
    # an audio recording and the whistleblower's comments on the record, sealed likewise.
    sealed_record: Mapped[bytes | None] = mapped_column(LargeBinary)
    meeting_planned_at: Mapped[datetime | None]
    # ISO 37002 triage (priority, completeness, risk of retaliation, protection plan), sealed.
    sealed_triage: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The register's summary of the report (§ 21), written by a designated person, sealed.
    sealed_summary: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Why a personal meeting was planned past its 14-day deadline (e.g. the whistleblower's wish).
    sealed_meeting_late_reason: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A legal hold (e.g. court proceedings) keeps the case past the retention period; the
    # reason is sealed under the report key.
    legal_hold_at: Mapped[datetime | None]
    sealed_legal_hold: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A report that excludes designated persons: the report key sealed to the organisation's
    # recovery public key; keyed hashes (server key) of the excluded persons, so the service
    # never shares it with them; how many were excluded and, if the whistleblower chose, by
    # which names, sealed under the report key.
    key_for_recovery: Mapped[bytes | None] = mapped_column(LargeBinary)
    exclusion_tags: Mapped[bytes | None] = mapped_column(LargeBinary)
    sealed_exclusion: Mapped[bytes | None] = mapped_column(LargeBinary)


class ReportRecipient(Base):
    """A designated person who may read a report that excludes someone: the report key sealed
    (HPKE) to their own public key."""

    __tablename__ = "report_recipient"

    report_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("member.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    sealed_report_key: Mapped[bytes] = mapped_column(LargeBinary)
    # Who shared it; None when the whistleblower's exclusion made this person a recipient.
    granted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PurgedReport(Base):
    """What remains of a report erased after the retention period: no personal data.

    Kept for statistics and so that a reference is never given twice.
    """

    __tablename__ = "purged_report"
    __table_args__ = (UniqueConstraint("organisation_id", "reference_year", "reference_number"),)

    # The erased report's id, so audit events that name it still resolve to a reference.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    reference_year: Mapped[int] = mapped_column(Integer)
    reference_number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))
    purged_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def reference(self) -> str:
        return f"{self.reference_year}-{self.reference_number:04d}"


class ReportMessage(UUIDPrimaryKey, Base):
    """A message of the thread between the whistleblower and the designated persons."""

    __tablename__ = "report_message"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    report_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(20))  # "whistleblower" or "member"
    member_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)


class CaseNote(UUIDPrimaryKey, Base):
    """An internal note of the designated persons; the whistleblower never sees it."""

    __tablename__ = "case_note"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    report_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report.id", ondelete="CASCADE"), index=True
    )
    member_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)


class CaseMeasure(UUIDPrimaryKey, Base):
    """Measures on a valid report, proposed by a designated person or taken by the organisation."""

    __tablename__ = "case_measure"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    report_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report.id", ondelete="CASCADE"), index=True
    )
    member_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(20))
    told_whistleblower: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(UUIDPrimaryKey, Base):
    """A file, stored encrypted in chunks under the report key."""

    __tablename__ = "attachment"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    report_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("report_message.id", ondelete="CASCADE"), index=True
    )
    uploaded_by: Mapped[str] = mapped_column(String(20))  # "whistleblower" or "member"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    size: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    # File name and content type, sealed under the report key.
    sealed_meta: Mapped[bytes] = mapped_column(LargeBinary)


class AttachmentChunk(Base):
    __tablename__ = "attachment_chunk"
    __table_args__ = (UniqueConstraint("attachment_id", "index"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    attachment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attachment.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class DeadlineReminder(UUIDPrimaryKey, Base):
    """A reminder sent to the designated persons; the unique key stops a second one."""

    __tablename__ = "deadline_reminder"
    __table_args__ = (UniqueConstraint("report_id", "kind", "due_on", "stage"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    report_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # acknowledgement, assessment, meeting
    due_on: Mapped[date]
    stage: Mapped[str] = mapped_column(String(10))  # soon, passed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
