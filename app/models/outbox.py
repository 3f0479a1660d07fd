import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class OutboxMail(Base):
    """An e-mail waiting to be sent; the worker takes it under a lease and deletes it once sent
    or given up. Mails to whistleblowers are never stored (app/services/courier.py)."""

    __tablename__ = "outbox_mail"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    # Random, chosen before the insert: with the kind, the associated data of the sealed
    # message, which therefore opens in no other row and for no other purpose.
    seal_id: Mapped[uuid.UUID]
    # Recipient and message sealed under a sub-key of the server key.
    sealed_message: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    leased_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
