import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey, utcnow


class AuditEvent(UUIDPrimaryKey, Base):
    """One link of an organisation's hash-chained audit trail; it never holds report content."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("organisation_id", "seq"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The acting designated person; None for the system.
    member_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member.id", ondelete="SET NULL")
    )
    # No foreign key: the trail outlives the report's purge.
    report_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(40))
    # A reason typed by a person is here only as a commitment ("sealed:" and a SHA-256).
    detail: Mapped[str] = mapped_column(String(500), default="")
    # That reason sealed to the organisation key of `reason_key_version`; outside the chain, so a
    # key rotation re-seals it without breaking the chain.
    sealed_reason: Mapped[bytes | None] = mapped_column(LargeBinary)
    reason_key_version: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
