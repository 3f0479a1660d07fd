import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey, utcnow


class Member(UUIDPrimaryKey, Base):
    """A designated person's account; one person may serve several organisations."""

    __tablename__ = "member"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    password_params: Mapped[str] = mapped_column(String(64))
    password_verifier: Mapped[bytes] = mapped_column(LargeBinary(32))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The member's private key sealed under a key derived from the password (Argon2id).
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    # TOTP secret sealed under a sub-key of the server key; pending until confirmed.
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None]
    totp_last_counter: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    """A member's place in an organisation, with the grant of the organisation key."""

    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("organisation_id", "member_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    member_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("member.id", ondelete="CASCADE"), index=True
    )
    # The organisation private key sealed (HPKE) to the member's public key; None until granted.
    org_key_grant: Mapped[bytes | None] = mapped_column(LargeBinary)
    # While the organisation key is being rotated: the new organisation private key, sealed
    # likewise.
    next_org_key_grant: Mapped[bytes | None] = mapped_column(LargeBinary)
    # MAC under a server sub-key binding organisation, member and the member's public key: a
    # key holder is offered to grant access only to memberships the service itself created.
    tag: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The organisation's record of the appointment and of the written instruction of duties.
    appointed_on: Mapped[date | None]
    instructed_on: Mapped[date | None]
    instruction_document: Mapped[str] = mapped_column(String(500), default="")
    # The name the report form lists this person by, so a whistleblower can exclude them from a
    # report that concerns them; empty: not listed.
    published_name: Mapped[str] = mapped_column(String(200), default="")


class Invitation(UUIDPrimaryKey, Base):
    """An invitation of a new designated person; the link's token is stored as a keyed hash."""

    __tablename__ = "invitation"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]


class MemberSession(UUIDPrimaryKey, Base):
    """A login session: the cookie carries a secret the database knows only by its hash."""

    __tablename__ = "member_session"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    member_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("member.id", ondelete="CASCADE"), index=True
    )
    # The member's private key sealed under a key derived from the cookie secret.
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginThrottle(Base):
    """Failed logins per keyed hash of the e-mail, whether or not an account exists."""

    __tablename__ = "login_throttle"

    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
