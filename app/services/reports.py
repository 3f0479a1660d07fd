"""Whistleblower intake: submitting a report, opening it with the tracking code, the thread."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import ScalarSelect

from app import crypto
from app.config import Settings
from app.db import sqlite_write_lock
from app.errors import Conflict, InvalidInput, NotFound
from app.i18n import N_
from app.models import Attachment, Organisation, PurgedReport, Report, ReportMessage
from app.models.base import utcnow
from app.schemas.report import (
    AttachmentRead,
    MessageRead,
    RecordComment,
    RecordRead,
    ReportCreate,
    ReportSelfRead,
)
from app.services import attachments, courier, deadlines, exclusion, grants, keys, mail
from app.services.attachments import IncomingFile
from app.templating import render_mail

# The register's summary is prefilled with this many characters of the report.
SUMMARY_LENGTH = 300
UNKNOWN_CODE = N_("No report matches this tracking code. Check it and try again.")


@dataclass(frozen=True)
class Submitted:
    report: Report
    tracking_code: str = field(repr=False)


@dataclass(frozen=True)
class RecordedReport:
    """A report received by telephone, in person or by post, as a designated person recorded it."""

    channel: str
    received_at: datetime
    record: RecordRead


@dataclass(frozen=True)
class OpenedReport:
    """A report unlocked by its tracking code, with the report key the code unwraps."""

    report: Report
    organisation: Organisation
    report_key: bytes = field(repr=False)


def tracking_url(settings: Settings, code: str, slug: str | None = None) -> str:
    """The tracking link; the code is in the fragment, which browsers never send to a server.

    With a slug it is the organisation's tracking page, which may be framed where its form is.
    """
    page = f"/{slug}/track" if slug else "/track"
    return f"{settings.public_url.rstrip('/')}{page}#{code}"


def _tracking_hash(settings: Settings, normalised: str) -> bytes:
    return keys.keyed_hash(settings, "tracking-lookup", normalised.encode())


def aad(purpose: bytes, *ids: uuid.UUID) -> bytes:
    """Associated data binding a ciphertext to its purpose and its rows."""
    return purpose + b"|" + b"".join(i.bytes for i in ids)


def check_acceptance(organisation: Organisation, data: ReportCreate) -> None:
    """The organisation's rules: anonymous reports, and reports from people outside it."""
    if data.anonymous and not organisation.accepts_anonymous:
        raise InvalidInput(
            N_("This organisation does not accept anonymous reports. Give your name, or report "
               "to the Ministry of Justice's external channel."),
            field="anonymous",
        )  # fmt: skip
    if not data.anonymous and not data.name:
        raise InvalidInput(N_("Give your name, or choose to stay anonymous."), field="name")
    if organisation.only_own_people and data.relationship in (None, "other"):
        raise InvalidInput(
            N_("This organisation accepts reports only from people who work or worked for it. "
               "You can report to the Ministry of Justice's external channel."),
            field="relationship",
        )  # fmt: skip


async def submit_report(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    data: ReportCreate,
    files: Sequence[IncomingFile] = (),
    *,
    recorded: RecordedReport | None = None,
    exclude: Sequence[uuid.UUID] = (),
    name_excluded: bool = False,
) -> Submitted:
    """Seal and store a report; the tracking code is returned once and never stored.

    `recorded` is a report a designated person took down from a call, a meeting or a letter:
    its channel and date of receipt, and the record's own sealed details. `exclude` names
    designated persons the report must never reach (app/services/exclusion.py).
    """
    if recorded is None:
        check_acceptance(organisation, data)
    excluding = await exclusion.plan(session, settings, organisation, exclude) if exclude else None
    if data.anonymous:  # identity fields of an anonymous report are not kept at all
        data = data.model_copy(
            update={"name": None, "birth_date": None, "contact_address": None, "phone": None}
        )
    report_key = crypto.random_key()
    code = crypto.new_tracking_code()
    normalised = crypto.normalise_tracking_code(code)
    assert normalised is not None  # noqa: S101 - a fresh code is well-formed
    received_at = recorded.received_at if recorded else utcnow()
    received_on = deadlines.local_date(received_at)
    profile = deadlines.CZECH
    report_id = uuid.uuid4()
    assessment = deadlines.deadline(received_on, profile.assessment_days)
    report = Report(
        id=report_id,
        organisation_id=organisation.id,
        channel=recorded.channel if recorded else "web",
        reference_year=received_on.year,
        received_at=received_at,
        meeting_due_on=deadlines.deadline(received_on, profile.meeting_days).due_on
        if data.meeting_requested
        else None,
        acknowledgement_due_on=None
        if data.no_acknowledgement
        else deadlines.deadline(received_on, profile.acknowledgement_days).due_on,
        assessment_due_on=assessment.due_on,
        assessment_unshifted_on=assessment.unshifted_on,
        meeting_requested=data.meeting_requested,
        no_acknowledgement=data.no_acknowledgement,
        tracking_hash=_tracking_hash(settings, normalised),
        key_for_whistleblower=crypto.seal(
            crypto.code_key(normalised, "tracking-wrap"), report_key, aad(b"report-key", report_id)
        ),
        sealed_content=crypto.seal(
            report_key, data.model_dump_json().encode(), aad(b"report-content", report_id)
        ),
    )
    if recorded is not None:
        report.sealed_record = seal_record(report_key, report, recorded.record)
    else:  # a report the designated person took down needs telling nobody
        addresses = (
            [organisation.email]
            if excluding is None
            else [holder.email for holder in excluding.remaining]
        )
        await _notify(session, settings, organisation, "new_report", addresses)
        if data.email:
            subject, text = render_mail(
                "report_receipt",
                organisation=organisation,
                link=tracking_url(settings, code),
                received_on=received_on,
                no_acknowledgement=data.no_acknowledgement,
            )
            # Never stored: it carries the tracking link (app/services/courier.py).
            courier.send_after_commit(session, settings, to=data.email, subject=subject, text=text)
    # Last: the number locks the organisation's row until commit, which serialises its reports.
    report.reference_number = await _next_reference_number(session, organisation, received_on.year)
    # Sealed under that lock, which a key rotation's last step takes too: a report is never
    # sealed to a key that was just retired.
    grants.check_organisation_key(settings, organisation)
    report.key_version = organisation.key_version
    recipients = []
    if excluding is None:
        report.key_for_organisation = crypto.seal_to(
            organisation.public_key, report_key, aad(b"report-key", report_id)
        )
    else:
        recipients = exclusion.seal_excluding(
            settings, organisation, report, report_key, excluding, name_excluded=name_excluded
        )
    session.add(report)
    await session.flush()
    session.add_all(recipients)
    uploaded_by = "member" if recorded is not None else "whistleblower"
    await store_files(session, settings, report, report_key, files, uploaded_by=uploaded_by)
    return Submitted(report=report, tracking_code=code)


async def _next_reference_number(
    session: AsyncSession, organisation: Organisation, year: int
) -> int:
    """The next number of the organisation's yearly series, taken under a lock on the row.

    Numbers of purged reports count too: a tombstone keeps its reference for good.
    """
    await sqlite_write_lock(session)  # so two reports never share a number there
    # populate_existing: the organisation's key columns as they are under the lock.
    await session.execute(
        select(Organisation)
        .where(Organisation.id == organisation.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    # A statement of its own after the lock: in PostgreSQL a statement sees what was committed
    # before it began, so read in the locking statement these would miss the report whose
    # commit released the lock.
    last = (
        await session.execute(
            select(
                _highest_number(Report, organisation.id, year),
                _highest_number(PurgedReport, organisation.id, year),
            )
        )
    ).one()
    return max(last[0] or 0, last[1] or 0) + 1


def _highest_number(
    model: type[Report] | type[PurgedReport], organisation_id: uuid.UUID, year: int
) -> ScalarSelect[int | None]:
    return (
        select(func.max(model.reference_number))
        .where(model.organisation_id == organisation_id, model.reference_year == year)
        .scalar_subquery()
    )


async def store_files(
    session: AsyncSession,
    settings: Settings,
    report: Report,
    report_key: bytes,
    files: Sequence[IncomingFile],
    message_id: uuid.UUID | None = None,
    uploaded_by: str = "whistleblower",
) -> None:
    if len(files) > settings.max_files:
        raise InvalidInput(N_("Too many files."), code="too_many_files", field="files")
    for upload in files:
        await attachments.store_file(
            session,
            settings,
            organisation_id=report.organisation_id,
            report_id=report.id,
            report_key=report_key,
            upload=upload,
            uploaded_by=uploaded_by,
            message_id=message_id,
        )


async def _notify(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    kind: str,
    addresses: Sequence[str],
) -> None:
    """Tell the organisation something arrived; the mail carries nothing of the content."""
    subject, text = render_mail(
        kind, organisation=organisation, link=f"{settings.public_url.rstrip('/')}/login"
    )
    for address in addresses:
        await mail.enqueue(session, settings, kind=kind, to=address, subject=subject, text=text)


async def _notify_organisation(
    session: AsyncSession, settings: Settings, organisation: Organisation, report: Report, kind: str
) -> None:
    """Tell those who can read the report. A report that excludes someone is told to its
    recipients one by one, never to the organisation's address, which the excluded person may
    read."""
    if report.key_for_organisation is not None:
        addresses = [organisation.email]
    else:
        addresses = await exclusion.recipient_emails(session, report.id)
    await _notify(session, settings, organisation, kind, addresses)


def summarise(description: str, length: int = SUMMARY_LENGTH) -> str:
    """The first `length` characters of the text on one line, cut at a word, with "…"."""
    text = " ".join(description.split())
    if len(text) <= length:
        return text
    cut = text[:length]
    if text[length] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


async def open_by_code(session: AsyncSession, settings: Settings, code: str) -> OpenedReport:
    """The report of a tracking code; the same NotFound for any code that does not open one."""
    normalised = crypto.normalise_tracking_code(code[:100])
    if normalised is None:
        raise NotFound(UNKNOWN_CODE, code="unknown_tracking_code")
    report = await session.scalar(
        select(Report).where(Report.tracking_hash == _tracking_hash(settings, normalised))
    )
    if report is None:
        raise NotFound(UNKNOWN_CODE, code="unknown_tracking_code")
    organisation = await session.get(Organisation, report.organisation_id)
    assert organisation is not None  # noqa: S101 - a foreign key
    try:
        report_key = crypto.open_sealed(
            crypto.code_key(normalised, "tracking-wrap"),
            report.key_for_whistleblower,
            aad(b"report-key", report.id),
        )
    except crypto.CryptoError:
        raise NotFound(UNKNOWN_CODE, code="unknown_tracking_code") from None
    return OpenedReport(report=report, organisation=organisation, report_key=report_key)


def seal_content(report_key: bytes, report: Report, content: ReportCreate) -> None:
    report.sealed_content = crypto.seal(
        report_key, content.model_dump_json().encode(), aad(b"report-content", report.id)
    )


def seal_record(report_key: bytes, report: Report, record: RecordRead) -> bytes:
    return crypto.seal(report_key, record.model_dump_json().encode(), aad(b"record", report.id))


def add_record_comment(
    report_key: bytes, report: Report, text: str, by: Literal["member", "whistleblower"]
) -> None:
    """Append dated comments to the record of a report taken down; earlier ones stay."""
    record = read_record(report_key, report)
    if record is None:
        raise Conflict(N_("This case was not taken down from an oral report."), code="wrong_state")
    record.comments.append(RecordComment(text=text, at=utcnow(), by=by))
    report.sealed_record = seal_record(report_key, report, record)


def read_record(report_key: bytes, report: Report) -> RecordRead | None:
    if report.sealed_record is None:
        return None
    plaintext = crypto.open_sealed(report_key, report.sealed_record, aad(b"record", report.id))
    return RecordRead.model_validate_json(plaintext)


def read_content(report_key: bytes, report: Report) -> ReportCreate:
    plaintext = crypto.open_sealed(
        report_key, report.sealed_content, aad(b"report-content", report.id)
    )
    return ReportCreate.model_validate_json(plaintext)


def _attachment_read(attachment: Attachment, report_key: bytes) -> AttachmentRead:
    meta = attachments.read_meta(attachment, report_key)
    return AttachmentRead(
        id=str(attachment.id),
        name=meta["name"],
        content_type=meta["type"] or "application/octet-stream",
        size=attachment.size,
        uploaded_by=attachment.uploaded_by,
        created_at=attachment.created_at,
    )


async def read_thread(
    session: AsyncSession, report: Report, report_key: bytes
) -> tuple[list[MessageRead], list[AttachmentRead]]:
    """The decrypted messages with their files, and the files of the report itself."""
    messages = list(
        await session.scalars(
            select(ReportMessage)
            .where(ReportMessage.report_id == report.id)
            .order_by(ReportMessage.created_at)
        )
    )
    files = list(
        await session.scalars(
            select(Attachment)
            .where(Attachment.report_id == report.id, Attachment.complete.is_(True))
            .order_by(Attachment.created_at)
        )
    )
    by_message: dict[uuid.UUID | None, list[AttachmentRead]] = {}
    for attachment in files:
        by_message.setdefault(attachment.message_id, []).append(
            _attachment_read(attachment, report_key)
        )
    thread = [
        MessageRead(
            id=str(message.id),
            author=message.author,
            body=open_message(report_key, message),
            created_at=message.created_at,
            attachments=by_message.get(message.id, []),
        )
        for message in messages
    ]
    return thread, by_message.get(None, [])


def seal_message(report_key: bytes, message: ReportMessage, body: str) -> None:
    message.sealed_body = crypto.seal(
        report_key, body.encode(), aad(b"message", message.report_id, message.id)
    )


def open_message(report_key: bytes, message: ReportMessage) -> str:
    return crypto.open_sealed(
        report_key, message.sealed_body, aad(b"message", message.report_id, message.id)
    ).decode()


async def whistleblower_view(session: AsyncSession, opened: OpenedReport) -> ReportSelfRead:
    """Everything the whistleblower may see of their case, decrypted with their code."""
    report = opened.report
    messages, files = await read_thread(session, report, opened.report_key)
    return ReportSelfRead(
        organisation=opened.organisation.name,
        status=report.status,
        received_at=report.received_at,
        acknowledgement_due_on=report.acknowledgement_due_on,
        assessment_due_on=report.assessment_due_on,
        meeting_requested=report.meeting_requested,
        meeting_due_on=report.meeting_due_on,
        meeting_planned_at=report.meeting_planned_at,
        record=read_record(opened.report_key, report),
        report=read_content(opened.report_key, report),
        messages=messages,
        attachments=files,
    )


async def add_whistleblower_message(
    session: AsyncSession,
    settings: Settings,
    opened: OpenedReport,
    body: str,
    files: Sequence[IncomingFile] = (),
) -> ReportMessage:
    """The whistleblower writes to the designated persons, optionally with files."""
    report = opened.report
    message_id = uuid.uuid4()
    message = ReportMessage(
        id=message_id,
        organisation_id=report.organisation_id,
        report_id=report.id,
        author="whistleblower",
    )
    seal_message(opened.report_key, message, body)
    session.add(message)
    await session.flush()
    await store_files(session, settings, report, opened.report_key, files, message.id)
    await _notify_organisation(session, settings, opened.organisation, opened.report, "new_message")
    return message


async def comment_on_record(
    session: AsyncSession, settings: Settings, opened: OpenedReport, text: str
) -> None:
    """The whistleblower comments on the record made of their oral or in-person report."""
    add_record_comment(opened.report_key, opened.report, text, by="whistleblower")
    await _notify_organisation(session, settings, opened.organisation, opened.report, "new_message")
    await session.flush()


async def request_meeting(session: AsyncSession, settings: Settings, opened: OpenedReport) -> None:
    """The whistleblower asks for a personal meeting after reporting: 14 days from today."""
    report = opened.report
    if report.meeting_requested:
        raise Conflict(N_("You have already asked for a personal meeting."), code="wrong_state")
    today = deadlines.local_date(utcnow())
    report.meeting_requested = True
    report.meeting_due_on = deadlines.deadline(today, deadlines.CZECH.meeting_days).due_on
    await _notify_organisation(session, settings, opened.organisation, opened.report, "new_message")
    await session.flush()


async def report_attachment(
    session: AsyncSession, report: Report, report_key: bytes, attachment_id: str
) -> tuple[Attachment, AttachmentRead]:
    """One complete file of this report; NotFound for any other or a malformed id."""
    try:
        wanted = uuid.UUID(attachment_id)
    except ValueError:
        raise NotFound(N_("No such file.")) from None
    attachment = await session.scalar(
        select(Attachment).where(
            Attachment.id == wanted,
            Attachment.report_id == report.id,
            Attachment.complete.is_(True),
        )
    )
    if attachment is None:
        raise NotFound(N_("No such file."))
    return attachment, _attachment_read(attachment, report_key)
