import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey, utcnow


class Operator(UUIDPrimaryKey, Base):
    """The service operator's account: no key pair, so nothing it could ever decrypt with."""

    __tablename__ = "operator"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    # Argon2id hash in the PHC string format.
    password_hash: Mapped[str] = mapped_column(String(200))
    # TOTP is required: the secret is sealed under a sub-key of the server key.
    totp_secret: Mapped[bytes] = mapped_column(LargeBinary)
    totp_last_counter: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OperatorSession(UUIDPrimaryKey, Base):
    __tablename__ = "operator_session"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    operator_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("operator.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class TermsVersion(UUIDPrimaryKey, Base):
    """A version of the operator's terms, announced before it takes effect."""

    __tablename__ = "terms_version"

    version: Mapped[str] = mapped_column(String(20), unique=True)
    summary: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(500), default="")
    announced_at: Mapped[datetime] = mapped_column(default=utcnow)
    effective_on: Mapped[date]


class SubProcessor(UUIDPrimaryKey, Base):
    """A processor the operator engages (hosting, e-mail delivery, payments); never deleted, so
    the public list keeps its history."""

    __tablename__ = "sub_processor"

    name: Mapped[str] = mapped_column(String(200))
    purpose_cs: Mapped[str] = mapped_column(String(500))
    purpose_en: Mapped[str] = mapped_column(String(500))
    # ISO 3166-1 alpha-2 code of the country where it processes the data.
    country: Mapped[str] = mapped_column(String(2))
    effective_on: Mapped[date]
    removed_on: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubProcessorChange(UUIDPrimaryKey, Base):
    """One change of the list: a sub-processor added, changed or removed, as it was after it."""

    __tablename__ = "sub_processor_change"

    sub_processor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sub_processor.id", ondelete="CASCADE"), index=True
    )
    change: Mapped[str] = mapped_column(String(10))
    effective_on: Mapped[date]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    name: Mapped[str] = mapped_column(String(200))
    purpose_cs: Mapped[str] = mapped_column(String(500))
    purpose_en: Mapped[str] = mapped_column(String(500))
    country: Mapped[str] = mapped_column(String(2))


class ServiceContact(Base):
    """The operator's support contact and status line, shown on every page and in the mails.

    One row at most, with id 1."""

    __tablename__ = "service_contact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    support_email: Mapped[str] = mapped_column(String(254), default="")
    support_phone: Mapped[str] = mapped_column(String(40), default="")
    status_cs: Mapped[str] = mapped_column(String(200), default="")
    status_en: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SecurityIncident(UUIDPrimaryKey, Base):
    """A personal data breach or other security incident recorded by the operator."""

    __tablename__ = "security_incident"

    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    detected_at: Mapped[datetime]
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    measures: Mapped[str] = mapped_column(Text, default="")
    operator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("operator.id", ondelete="SET NULL")
    )


class IncidentNotice(UUIDPrimaryKey, Base):
    """That an organisation was notified of an incident, and when."""

    __tablename__ = "incident_notice"

    incident_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("security_incident.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    # None while the organisation is affected but not yet notified.
    notified_at: Mapped[datetime | None]


class OperatorEvent(UUIDPrimaryKey, Base):
    """The operator's own log: what the operator and the service did to registrations.

    No foreign key to the organisation: the record that an organisation was erased outlives it.
    """

    __tablename__ = "operator_event"

    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    operator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("operator.id", ondelete="SET NULL")
    )
    organisation_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(500), default="")
