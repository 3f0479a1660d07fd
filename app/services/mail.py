"""The e-mail outbox: mails are rows sealed under a server sub-key, sent later by the worker.

A mail is queued in the caller's transaction, so it exists exactly when what it announces was
committed. The worker claims one due mail at a time under a lease, sends it outside any
transaction and then deletes the row, as it does once it gives a mail up; a crash between the
two leaves a lease that expires, so a mail is sent at least once and, while the lease holds, by
one worker only. Mails to whistleblowers never come here (app/services/courier.py).
"""

import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import Header
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr
from typing import Any, cast

import aiosmtplib
from sqlalchemy import ColumnElement, CursorResult, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.models.base import utcnow
from app.models.operator import ServiceContact
from app.models.outbox import OutboxMail
from app.services import keys
from app.templating import render_mail_footer

logger = logging.getLogger("pistalka.mail")

KEY_PURPOSE = "outbox"
PAYLOAD_VERSION = 1
LEASE = timedelta(minutes=5)
CLAIM_TRIES = 3
MAX_ATTEMPTS = 20
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
MAX_ERROR_LENGTH = 500
# The whistleblower's mails speak for the organisation: the operator's support contact has no
# place there (it could draw a report to the operator, who must never read one).
WHISTLEBLOWER_MAILS = frozenset({"report_receipt", "case_update"})
# Errors that say the server cannot be reached: every other mail of this run would fail the same
# way (each after up to smtp_timeout), so the run stops and leaves them for the next one.
CONNECTION_ERRORS = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True)
class Mail:
    """An opened outbox message; never logged (repr hides the recipient and the contents)."""

    to: str = field(repr=False)
    subject: str = field(repr=False)
    text: str = field(repr=False)
    html: str | None = field(default=None, repr=False)
    message_id: str = field(default="", repr=False)


def _key(settings: Settings) -> bytes:
    return keys.server_subkey(settings, KEY_PURPOSE)


def check_header(name: str, value: str) -> None:
    # A line break in a header would let the value add headers or recipients of its own.
    if "\r" in value or "\n" in value:
        raise ValueError(f"line break in the {name} header")


def new_message_id(settings: Settings) -> str:
    # Random only: make_msgid() would put this host's name, the time and the process id in it.
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    return f"<{secrets.token_urlsafe(18)}@{domain}>"


def outbox_aad(kind: str, seal_id: uuid.UUID) -> bytes:
    """A sealed message opens only in its own row and for its own purpose."""
    return b"outbox|" + seal_id.bytes + kind.encode()


def seal_mail(settings: Settings, mail: Mail, kind: str, seal_id: uuid.UUID) -> bytes:
    payload = {
        "v": PAYLOAD_VERSION,
        "to": mail.to,
        "subject": mail.subject,
        "text": mail.text,
        "html": mail.html,
        "message_id": mail.message_id,
    }
    plaintext = json.dumps(payload, ensure_ascii=False).encode()
    return crypto.seal(_key(settings), plaintext, outbox_aad(kind, seal_id))


def open_mail(settings: Settings, sealed: bytes, kind: str, seal_id: uuid.UUID) -> Mail:
    """Decrypt an outbox row's message (CryptoError unless we sealed it for this row)."""
    payload = json.loads(crypto.open_sealed(_key(settings), sealed, outbox_aad(kind, seal_id)))
    if payload.get("v") != PAYLOAD_VERSION:
        raise ValueError("unknown outbox payload version")
    return Mail(
        to=payload["to"],
        subject=payload["subject"],
        text=payload["text"],
        html=payload.get("html"),
        message_id=payload.get("message_id") or "",
    )


async def enqueue(
    session: AsyncSession,
    settings: Settings,
    *,
    kind: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
) -> OutboxMail:
    """Queue a mail in the caller's transaction; it is sent once that transaction commits.

    Every mail but the whistleblower's ends with the operator's support contact and status."""
    check_header("To", to)
    check_header("Subject", subject)
    if kind not in WHISTLEBLOWER_MAILS:
        text += render_mail_footer(await session.get(ServiceContact, 1))
    # Chosen now, so a mail sent twice (a crash after sending) carries one Message-ID.
    message_id = new_message_id(settings)
    mail = Mail(to=to, subject=subject, text=text, html=html, message_id=message_id)
    seal_id = uuid.uuid4()
    row = OutboxMail(
        kind=kind, seal_id=seal_id, sealed_message=seal_mail(settings, mail, kind, seal_id)
    )
    session.add(row)
    await session.flush()
    return row


class _SubjectHeader(UnstructuredHeader, BaseHeader):
    """A subject folded into encoded words that keep every space of the text.

    Python's own folder (3.11) moves the space after an encoded word outside it, between two
    encoded words, where RFC 2047 decoders drop it: "organizaci Nováček" arrived as
    "organizaciNováček". Encoding the whole subject as one run of encoded words keeps the spaces.
    """

    def fold(self, *, policy: Policy) -> str:
        text = str(self)
        if text.isascii() or getattr(policy, "utf8", False):
            return super().fold(policy=policy)
        encoded = Header(text, "utf-8", header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


_headers = HeaderRegistry()
_headers.map_to_type("subject", _SubjectHeader)
POLICY = default_policy.clone(header_factory=_headers)


def build_message(settings: Settings, mail: Mail, *, now: datetime | None = None) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = settings.mail_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now or utcnow())
    message["Message-ID"] = mail.message_id or new_message_id(settings)
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


async def send_message(settings: Settings, message: EmailMessage) -> None:
    """Hand one message to the configured SMTP server."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_user or None,
        password=password if settings.smtp_user else None,
        use_tls=settings.smtp_tls,
        # Implicit TLS excludes STARTTLS; otherwise require it when configured and use it
        # whenever the server offers it (aiosmtplib's None).
        start_tls=False if settings.smtp_tls else (True if settings.smtp_starttls else None),
        timeout=settings.smtp_timeout,
    )


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(OutboxMail.next_attempt_at <= now, _lease_free(now))


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(OutboxMail.leased_until.is_(None), OutboxMail.leased_until < now)


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return min(BACKOFF_BASE * (1 << min(attempts, 20)), BACKOFF_MAX)


def describe_error(exc: BaseException, recipient: str | None) -> str:
    """The error class and message for `last_error`, with the recipient's address taken out."""
    text = f"{type(exc).__name__}: {exc}"
    if recipient:
        # SMTP servers quote the refused address in their answers; it must not reach the row.
        variants = sorted({recipient, parseaddr(recipient)[1]} - {""}, key=len, reverse=True)
        for variant in variants:
            text = re.sub(re.escape(variant), "<recipient>", text, flags=re.IGNORECASE)
    return text[:MAX_ERROR_LENGTH]


@dataclass(frozen=True)
class _Claim:
    id: int
    kind: str
    seal_id: uuid.UUID
    sealed_message: bytes = field(repr=False)
    attempts: int
    leased_until: datetime


async def _claim(sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> _Claim | None:
    """Lease the next due mail in a short transaction of its own; None when nothing is due."""
    for _ in range(CLAIM_TRIES):
        async with sessionmaker() as session, session.begin():
            candidate = (
                await session.execute(
                    select(
                        OutboxMail.id,
                        OutboxMail.kind,
                        OutboxMail.seal_id,
                        OutboxMail.sealed_message,
                        OutboxMail.attempts,
                    )
                    .where(_due(now))
                    .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if candidate is None:
                return None
            mail_id, kind, seal_id, sealed, attempts = candidate
            leased_until = now + LEASE
            # The row lock covers PostgreSQL; on SQLite the SELECT locked nothing, so the lease
            # is taken only if it is still free when this UPDATE runs (one writer at a time).
            result = await session.execute(
                update(OutboxMail)
                .where(OutboxMail.id == mail_id, _lease_free(now))
                .values(leased_until=leased_until)
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], result).rowcount == 1:
                return _Claim(mail_id, kind, seal_id, sealed, attempts, leased_until)
        # Another worker leased this one between our SELECT and UPDATE: look for the next.
    return None


async def _forget(sessionmaker: async_sessionmaker[AsyncSession], mail_id: int) -> None:
    # A DELETE, not an UPDATE that blanks the message: nothing of a sent mail is kept on
    # purpose, and the housekeeping job clears what the database files still hold of it.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(OutboxMail)
            .where(OutboxMail.id == mail_id)
            .execution_options(synchronize_session=False)
        )


async def _mark_failed(
    sessionmaker: async_sessionmaker[AsyncSession], claim: _Claim, error: str, now: datetime
) -> None:
    attempts = claim.attempts + 1
    # Only while the lease is still ours: past it another worker may own the mail.
    ours = and_(OutboxMail.id == claim.id, OutboxMail.leased_until == claim.leased_until)
    async with sessionmaker() as session, session.begin():
        if attempts >= MAX_ATTEMPTS:
            await session.execute(
                delete(OutboxMail).where(ours).execution_options(synchronize_session=False)
            )
        else:
            await session.execute(
                update(OutboxMail)
                .where(ours)
                .values(
                    attempts=attempts,
                    last_error=error,
                    next_attempt_at=now + backoff(attempts),
                    leased_until=None,
                )
                .execution_options(synchronize_session=False)
            )
    if attempts >= MAX_ATTEMPTS:
        logger.error("outbox mail %s given up after %s attempts", claim.id, attempts)


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    limit: int = 50,
) -> int:
    """Send up to `limit` due mails, one lease at a time; returns how many were sent."""
    sent = 0
    for _ in range(limit):
        current = now if now is not None else utcnow()
        claim = await _claim(sessionmaker, current)
        if claim is None:
            break
        recipient: str | None = None
        try:
            mail = open_mail(settings, claim.sealed_message, claim.kind, claim.seal_id)
            recipient = mail.to
            await send_message(settings, build_message(settings, mail))
        except Exception as exc:
            error = describe_error(exc, recipient)
            await _mark_failed(sessionmaker, claim, error, current)
            logger.warning("outbox mail %s not sent: %s", claim.id, type(exc).__name__)
            if isinstance(exc, CONNECTION_ERRORS):
                break
            continue
        await _forget(sessionmaker, claim.id)
        sent += 1
    return sent
