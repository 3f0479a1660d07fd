"""Mails to a whistleblower: held only in this process's memory, never written to the database.

A whistleblower's receipt carries their tracking link, and every mail to them their address,
which the database otherwise holds only under the report key. A sealed copy in the outbox would
outlive its sending in the database's files, where the server key opens it. So such a mail is
queued on the session, handed to the courier once the transaction commits (dropped when it, or
the savepoint it was queued in, rolls back) and sent by a task that retries with backoff for up
to a day. A crash loses it; the tracking code is on the receipt page whatever happens here.
"""

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage

import aiosmtplib
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.config import Settings
from app.services import mail

logger = logging.getLogger("pistalka.courier")

PENDING = "courier_pending"
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class _Queued:
    transaction: SessionTransaction
    settings: Settings = field(repr=False)
    message: mail.Mail = field(repr=False)


def send_after_commit(
    session: AsyncSession, settings: Settings, *, to: str, subject: str, text: str
) -> None:
    """Send a mail to a whistleblower once the session's transaction commits; never stored."""
    mail.check_header("To", to)
    mail.check_header("Subject", subject)
    sync_session = session.sync_session
    transaction = sync_session.get_nested_transaction() or sync_session.get_transaction()
    if transaction is None:
        transaction = sync_session.begin()
    message = mail.Mail(to=to, subject=subject, text=text, message_id=mail.new_message_id(settings))
    session.info.setdefault(PENDING, []).append(_Queued(transaction, settings, message))


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    queued: list[_Queued] = session.info.get(PENDING, [])
    if queued:
        session.info[PENDING] = [
            item for item in queued if not _within(item.transaction, previous_transaction)
        ]


@event.listens_for(Session, "after_commit")
def _dispatch_committed(session: Session) -> None:
    # after_commit comes only for the outermost transaction: what was queued is now stored.
    queued: list[_Queued] = session.info.pop(PENDING, [])
    for item in queued:
        current().dispatch(item.settings, item.message)


def backoff(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt."""
    return min(RETRY_BASE * (1 << min(attempts - 1, 20)), RETRY_MAX).total_seconds()


def _permanent(exc: BaseException) -> bool:
    # A 5xx answer (an unknown mailbox, a refused message) will not change by trying again.
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500


class Courier:
    """The sending tasks of one event loop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._hurry = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def dispatch(self, settings: Settings, message: mail.Mail) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(settings, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, settings: Settings, message: mail.Mail) -> None:
        # Built once: every attempt carries the same Message-ID and Date.
        built: EmailMessage = mail.build_message(settings, message)
        give_up_at = time.monotonic() + GIVE_UP_AFTER.total_seconds()
        attempts = 0
        while True:
            try:
                await mail.send_message(settings, built)
                return
            except Exception as exc:
                attempts += 1
                wait = backoff(attempts)
                final = (
                    _permanent(exc) or self._hurry.is_set() or time.monotonic() + wait > give_up_at
                )
                # The class only: an SMTP answer may quote the whistleblower's address.
                logger.warning(
                    "mail to a whistleblower not sent (attempt %s%s): %s",
                    attempts,
                    ", given up" if final else "",
                    type(exc).__name__,
                )
                if final:
                    return
            try:
                await asyncio.wait_for(self._hurry.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """On shutdown: one last attempt for every waiting mail, for at most `timeout` seconds."""
        self._hurry.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in set(self._tasks):
            task.cancel()
        if self._tasks:
            logger.error("%s mails to whistleblowers lost at shutdown", len(self._tasks))
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._hurry.clear()


_couriers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Courier]" = (
    weakref.WeakKeyDictionary()
)


def current() -> Courier:
    """The courier of the running event loop."""
    loop = asyncio.get_running_loop()
    courier = _couriers.get(loop)
    if courier is None:
        courier = _couriers[loop] = Courier()
    return courier
