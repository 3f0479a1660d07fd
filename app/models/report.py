import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey, utcnow


class Report(UUIDPrimaryKey, Base):
    """A report and its case metadata; everything the whistleblower wrote is sealed."""

    __tablename__ = "report"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(20), default="web")
    status: Mapped[str] = mapped_column(String(20), default="received")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledgement_due_on: Mapped[date | None]
    assessment_due_on: Mapped[date]
    meeting_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    no_acknowledgement: Mapped[bool] = mapped_column(Boolean, default=False)
    # Keyed hash of the normalised tracking code: the code itself is never stored.
    tracking_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # The report key, sealed (HPKE) to the organisation and under the tracking code.
    key_for_organisation: Mapped[bytes] = mapped_column(LargeBinary)
    key_for_whistleblower: Mapped[bytes] = mapped_column(LargeBinary)
    # The form's fields as JSON, sealed under the report key.
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary)


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
