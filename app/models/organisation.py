import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey, utcnow


class Organisation(UUIDPrimaryKey, Base):
    __tablename__ = "organisation"

    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    ico: Mapped[str] = mapped_column(String(8))
    # VAT number for invoices (e.g. CZ12345678); empty when the organisation is not a VAT payer.
    dic: Mapped[str] = mapped_column(String(14), default="")
    address: Mapped[str] = mapped_column(String(500))
    email: Mapped[str] = mapped_column(String(254))
    email_verified_at: Mapped[datetime | None]
    # Keyed hash of the pending verification token; cleared once used.
    email_verification_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # HPKE public key; the private key exists only wrapped (grants, recovery key).
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # Counts the key pairs the organisation has had; a report records the one it is sealed to.
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    # The recovery key unwraps the recovery private key, and that opens `recovery_grant`, the
    # organisation private key sealed to the recovery public key, so a key rotation can re-seal
    # it without the printed key. Organisations registered before this (no recovery public
    # key) have the organisation private key itself under the recovery key.
    recovery_wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    recovery_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    recovery_grant: Mapped[bytes | None] = mapped_column(LargeBinary)
    # MAC under a server sub-key over the key columns: someone who can only write to the
    # database cannot swap the key that reports are sealed to.
    key_tag: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The operator checked that the registration is the organisation it claims to be.
    identity_verified_at: Mapped[datetime | None]
    blocked_at: Mapped[datetime | None]
    # The operator's reason for the block, shown to the organisation's designated persons.
    blocked_reason: Mapped[str] = mapped_column(String(500), default="")
    # Set when the organisation cancels its registration: the form closes at once and every
    # record of the organisation is erased when the export window after it has passed.
    cancelled_at: Mapped[datetime | None]
    # The version of the operator's terms the organisation accepted, and when.
    terms_version: Mapped[str | None] = mapped_column(String(20))
    terms_accepted_at: Mapped[datetime | None]

    # Settings of the public form and information page (public by nature, so in the clear).
    accepts_anonymous: Mapped[bool] = mapped_column(Boolean, default=True)
    only_own_people: Mapped[bool] = mapped_column(Boolean, default=False)
    # Origins allowed to embed the form in an iframe, one per line.
    embed_origins: Mapped[str] = mapped_column(Text, default="")
    info_how_to_report: Mapped[str] = mapped_column(Text, default="")
    info_designated_persons: Mapped[str] = mapped_column(Text, default="")

    @property
    def not_receiving_because(self) -> str | None:
        """Why the form does not accept reports now (the first reason), or None when it does.

        § 9 of the Act: the organisation publishes who its designated persons are or how to reach
        them before its channel opens.
        """
        if self.cancelled_at is not None:
            return "cancelled"
        if self.blocked_at is not None:
            return "blocked"
        if self.email_verified_at is None:
            return "not_verified"
        if not self.info_designated_persons.strip():
            return "no_designated_persons_published"
        return None

    @property
    def can_receive_reports(self) -> bool:
        return self.not_receiving_because is None

    @property
    def allowed_embed_origins(self) -> list[str]:
        return [line.strip() for line in self.embed_origins.splitlines() if line.strip()]


class KeyRotation(Base):
    """An organisation key rotation under way: the new key's public parts until the swap.

    The new private key exists only sealed to the remaining key holders
    (`Membership.next_org_key_grant`) and in `recovery_grant`; reports are re-sealed to it in
    batches, each marked by `Report.key_version`, so a crash half-way leaves every report
    readable and the rotation resumable by any of them.
    """

    __tablename__ = "key_rotation"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # Set only when the rotation also replaces the recovery key (organisations registered
    # before recovery key pairs): the new recovery key is shown once to whoever starts it.
    recovery_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    recovery_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    recovery_grant: Mapped[bytes] = mapped_column(LargeBinary)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("member.id", ondelete="SET NULL")
    )
    tag: Mapped[bytes] = mapped_column(LargeBinary(32))
