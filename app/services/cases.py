"""Case management by the designated persons: the list, the decrypted case and its actions.

A member reads an organisation's cases with the organisation key, which their session unlocks
through their grant; every read and every action is an audit event.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import TypeVarTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Date, Select, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import crypto, i18n
from app.config import Settings
from app.errors import Conflict, Forbidden, InvalidInput, KeyIntegrityFailure, NotFound
from app.i18n import N_
from app.models import (
    Attachment,
    AuditEvent,
    CaseMeasure,
    CaseNote,
    KeyRotation,
    Member,
    Membership,
    Organisation,
    Report,
    ReportMessage,
)
from app.models.base import utcnow
from app.schemas.case import (
    CaseRead,
    CaseSummary,
    IdentityUpdate,
    MeasureCreate,
    MeasureRead,
    MeetingPlan,
    NoteRead,
    RecordedReportCreate,
    Triage,
)
from app.schemas.report import AttachmentRead, RecordRead, ReportCreate
from app.services import (
    attachments,
    audit,
    courier,
    deadlines,
    exclusion,
    grants,
    reports,
    retention,
)
from app.services.attachments import IncomingFile
from app.services.auth import CurrentMember
from app.templating import render_mail
from app.vocabulary import OPEN_STATUSES, CaseStatus, MeasureKind

EXTERNAL_CHANNEL = "https://oznamovatel.justice.cz/"
CASE_NOT_FOUND = N_("No such case.")
PRAGUE = ZoneInfo(deadlines.CZECH.timezone)
_Row = TypeVarTuple("_Row")

DEFAULT_TEXTS = {
    "acknowledge": N_("We confirm that we received your report of %(date)s. We will assess it and "
                      "tell you the result by %(due)s."),
    "extend": N_("Assessing your report takes longer than usual. We are extending the deadline by "
                 "%(days)s days, to %(due)s. The reason: %(reason)s"),
    "valid": N_("We assessed your report as valid. We have proposed measures to the organisation "
                "to prevent or remedy the unlawful state, and we will tell you which were taken."),
    "not_valid": N_("We assessed your report as not valid: the facts given do not show the "
                    "suspected breach."),
    "not_a_report": N_("Having assessed your message, we found that it does not fall under Act No. "
                       "171/2023 Sb., so it is not handled further in this internal reporting "
                       "system. You may turn to the external reporting system of the Ministry of "
                       "Justice (%(url)s) or to another competent public authority."),
    "meeting": N_("We propose to meet in person on %(when)s at %(place)s. If the time does not "
                  "suit you, write to us."),
    "not_valid_instruction": N_("You may report the matter to a public authority, in particular "
                                "through the external reporting system of the Ministry of "
                                "Justice: %(url)s"),
}  # fmt: skip


@dataclass(frozen=True)
class CaseAccess:
    """A member's access to one organisation's cases, with its unwrapped private key."""

    organisation: Organisation
    member_id: uuid.UUID
    org_private_key: bytes = field(repr=False)
    # While the organisation key is rotated: the new key, which re-sealed reports need.
    next_private_key: bytes | None = field(default=None, repr=False)
    # The member's own private key, and the keys of reports that exclude someone sealed to it
    # (by report): the only way such a report opens.
    member_private_key: bytes | None = field(default=None, repr=False)
    sealed_for_member: Mapping[uuid.UUID, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class CaseEvent:
    """One audit event of a case as the case page shows it."""

    created_at: datetime
    email: str | None
    action: str
    detail: str


def bilingual(key: str, **params: object) -> str:
    """A default text to the whistleblower: Czech, then English."""
    texts = [i18n.translations(lang).ugettext(DEFAULT_TEXTS[key]) % params for lang in ("cs", "en")]
    return "\n\n".join(texts)


def _format_date(day: date) -> str:
    return day.strftime("%d. %m. %Y")


NO_GRANT = N_(
    "You have no access to the reports yet: a designated person who has it must confirm you on "
    "the team page. Your key's fingerprint is on your profile, for them to compare."
)


def _access(
    current: CurrentMember,
    organisation: Organisation,
    grant: bytes | None,
    next_grant: bytes | None = None,
    next_public_key: bytes | None = None,
) -> CaseAccess:
    if grant is None:
        raise Forbidden(NO_GRANT, code="no_grant")
    member_id = current.member.id
    private_key = grants.open_organisation_key(organisation, grant, current.private_key, member_id)
    next_key = None
    if next_grant is not None and next_public_key is not None:
        next_key = grants.open_organisation_key(
            organisation, next_grant, current.private_key, member_id, next_public_key
        )
    return CaseAccess(organisation, member_id, private_key, next_key, current.private_key)


async def _with_recipient_keys(
    session: AsyncSession, current: CurrentMember, accesses: list[CaseAccess]
) -> list[CaseAccess]:
    """The accesses with the keys of the reports excluding someone that this member may read."""
    sealed = await exclusion.sealed_for_member(
        session, current.member.id, [access.organisation.id for access in accesses]
    )
    if not sealed:
        return accesses
    return [replace(access, sealed_for_member=sealed) for access in accesses]


def readable(accesses: Sequence[CaseAccess]) -> ColumnElement[bool]:
    """The reports these accesses may open: all but those excluding someone, which only their
    recipients may."""
    mine = [report_id for access in accesses for report_id in access.sealed_for_member]
    return or_(Report.key_for_organisation.is_not(None), Report.id.in_(mine))


def _with_grants(
    query: Select[*_Row],
) -> Select[*_Row, bytes | None, bytes | None, bytes | None]:
    """The member's grants and a rotation's new public key, beside what `query` selects."""
    return query.add_columns(
        Membership.org_key_grant, Membership.next_org_key_grant, KeyRotation.public_key
    ).outerjoin(KeyRotation, KeyRotation.organisation_id == Membership.organisation_id)


async def accessible_organisations(
    session: AsyncSession, current: CurrentMember, slug: str | None = None
) -> list[CaseAccess]:
    """The organisations whose cases the member can open; with `slug`, that one or an error."""
    query = _with_grants(
        select(Organisation)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.member_id == current.member.id)
        .order_by(Organisation.name)
    )
    if slug is None:
        rows = (await session.execute(query.where(Membership.org_key_grant.is_not(None)))).all()
        return await _with_recipient_keys(
            session, current, [_access(current, *row) for row in rows]
        )
    row = (await session.execute(query.where(Organisation.slug == slug.lower()))).one_or_none()
    if row is None:
        raise NotFound(N_("No organisation uses this address."))
    return await _with_recipient_keys(session, current, [_access(current, *row)])


async def reason_keys(session: AsyncSession, current: CurrentMember, slug: str) -> dict[int, bytes]:
    """The keys that open the organisation's reasons of access; none without a grant."""
    try:
        [access] = await accessible_organisations(session, current, slug)
    except Forbidden:
        return {}
    return private_keys(access)


async def open_case(
    session: AsyncSession, current: CurrentMember, case_id: str
) -> tuple[CaseAccess, Report]:
    """A case of an organisation the member serves; NotFound for any other or a malformed id."""
    try:
        wanted = uuid.UUID(case_id)
    except ValueError:
        raise NotFound(CASE_NOT_FOUND) from None
    row = (
        await session.execute(
            _with_grants(
                select(Report, Organisation)
                .join(Organisation, Organisation.id == Report.organisation_id)
                .join(Membership, Membership.organisation_id == Report.organisation_id)
                .where(Report.id == wanted, Membership.member_id == current.member.id)
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound(CASE_NOT_FOUND)
    report, organisation, grant, next_grant, next_public_key = row
    access = _access(current, organisation, grant, next_grant, next_public_key)
    if report.key_for_organisation is None:
        # A report that excludes someone: as unknown to all but its recipients.
        [access] = await _with_recipient_keys(session, current, [access])
        if report.id not in access.sealed_for_member:
            raise NotFound(CASE_NOT_FOUND)
    return access, report


def report_key(access: CaseAccess, report: Report) -> bytes:
    if report.key_for_organisation is None:
        sealed = access.sealed_for_member.get(report.id)
        if sealed is None or access.member_private_key is None:
            raise NotFound(CASE_NOT_FOUND)
        return exclusion.open_for_member(
            access.member_private_key, sealed, report.id, access.member_id
        )
    private_key = access.org_private_key
    if report.key_version != access.organisation.key_version:
        if access.next_private_key is None:
            raise KeyIntegrityFailure()
        private_key = access.next_private_key  # re-sealed already by a rotation under way
    return crypto.open_with(
        private_key, report.key_for_organisation, reports.aad(b"report-key", report.id)
    )


def private_keys(access: CaseAccess) -> dict[int, bytes]:
    """The organisation private keys the access holds, by key version."""
    version = access.organisation.key_version
    found = {version: access.org_private_key}
    if access.next_private_key is not None:
        found[version + 1] = access.next_private_key
    return found


def _received_on(report: Report) -> date:
    return deadlines.local_date(report.received_at)


def meeting_late(report: Report, now: datetime) -> bool:
    """A meeting planned past its deadline whose time has not yet come."""
    planned, due = report.meeting_planned_at, report.meeting_due_on
    return (
        planned is not None
        and due is not None
        and planned > now
        and deadlines.local_date(planned) > due
    )


def _pending_deadlines(report: Report) -> list[date]:
    pending = []
    if report.status == "received" and report.acknowledgement_due_on is not None:
        pending.append(report.acknowledgement_due_on)
    if report.status in OPEN_STATUSES:
        pending.append(report.assessment_due_on)
    if report.meeting_due_on is not None and (
        report.meeting_planned_at is None or meeting_late(report, utcnow())
    ):
        pending.append(report.meeting_due_on)
    return pending


def summary(report: Report, organisation: Organisation, today: date) -> CaseSummary:
    pending = _pending_deadlines(report)
    return CaseSummary(
        id=report.id,
        organisation=organisation.slug,
        reference=report.reference,
        status=report.status,
        outcome=report.outcome,
        channel=report.channel,
        received_at=report.received_at,
        acknowledge_by=report.acknowledgement_due_on,
        assess_by=report.assessment_due_on,
        assess_by_unshifted=report.assessment_unshifted_on or report.assessment_due_on,
        meeting_by=report.meeting_due_on,
        extensions=report.extensions,
        overdue=any(day < today for day in pending),
        next_deadline=min(pending, default=None),
        retain_until=retention.expires_on(report.received_at),
        legal_hold=report.legal_hold_at is not None,
    )


def _today() -> date:
    return deadlines.local_date(utcnow())


NO_DEADLINE = date(9999, 12, 31)
PAGE_SIZE = 100
# The columns a case summary needs: the sealed ones stay in the database.
SUMMARY_COLUMNS = (
    Report.id,
    Report.organisation_id,
    Report.reference_year,
    Report.reference_number,
    Report.channel,
    Report.status,
    Report.outcome,
    Report.received_at,
    Report.acknowledgement_due_on,
    Report.assessment_due_on,
    Report.meeting_due_on,
    Report.meeting_planned_at,
    Report.extensions,
    Report.legal_hold_at,
)


def _next_deadline(dialect: str) -> ColumnElement[date]:
    """The earliest deadline still to meet, in SQL: what `_pending_deadlines` gives."""
    is_open = Report.status.in_(OPEN_STATUSES)
    acknowledgement = case(
        (
            Report.status == "received",
            func.coalesce(Report.acknowledgement_due_on, NO_DEADLINE),
        ),
        else_=NO_DEADLINE,
    )
    assessment = case((is_open, Report.assessment_due_on), else_=NO_DEADLINE)
    meeting = case(
        (
            and_(is_open, Report.meeting_planned_at.is_(None)),
            func.coalesce(Report.meeting_due_on, NO_DEADLINE),
        ),
        else_=NO_DEADLINE,
    )
    # PostgreSQL's least() and SQLite's many-argument min() are the same here: no NULLs.
    smallest = func.least if dialect == "postgresql" else func.min
    return smallest(acknowledgement, assessment, meeting, type_=Date)


@dataclass(frozen=True)
class CasePage:
    items: list[CaseSummary]
    total: int


async def list_cases(
    session: AsyncSession,
    accesses: Sequence[CaseAccess],
    *,
    status: str | None = None,
    outcome: str | None = None,
    limit: int = PAGE_SIZE,
    offset: int = 0,
) -> CasePage:
    """A page of the cases from metadata alone: overdue first, then by next deadline."""
    by_id = {access.organisation.id: access.organisation for access in accesses}
    condition = and_(Report.organisation_id.in_(list(by_id)), readable(accesses))
    if status:
        condition = and_(condition, Report.status == status)
    if outcome:
        condition = and_(condition, Report.outcome == outcome)
    dialect = (await session.connection()).dialect.name
    next_deadline = _next_deadline(dialect)
    today = _today()
    total = await session.scalar(select(func.count()).select_from(Report).where(condition))
    rows = await session.execute(
        select(*SUMMARY_COLUMNS)
        .where(condition)
        .order_by(
            case((next_deadline < today, 0), else_=1),
            next_deadline,
            Report.reference_year,
            Report.reference_number,
            Report.organisation_id,
        )
        .limit(limit)
        .offset(offset)
    )
    items = [summary(Report(**row._asdict()), by_id[row.organisation_id], today) for row in rows]
    return CasePage(items=items, total=total or 0)


async def case_counts(
    session: AsyncSession, accesses: Sequence[CaseAccess]
) -> dict[uuid.UUID, tuple[int, int]]:
    """(cases, overdue cases) per organisation."""
    dialect = (await session.connection()).dialect.name
    overdue = case((_next_deadline(dialect) < _today(), 1), else_=0)
    rows = await session.execute(
        select(Report.organisation_id, func.count(), func.sum(overdue))
        .where(
            Report.organisation_id.in_([access.organisation.id for access in accesses]),
            readable(accesses),
        )
        .group_by(Report.organisation_id)
    )
    counts = {access.organisation.id: (0, 0) for access in accesses}
    for organisation_id, total, late in rows.all():
        counts[organisation_id] = (int(total), int(late or 0))
    return counts


async def read_reason_given(session: AsyncSession, current: CurrentMember, report: Report) -> bool:
    """Whether the member gave a reason of access to this case in the current session."""
    found = await session.scalar(
        select(AuditEvent.id)
        .where(
            AuditEvent.report_id == report.id,
            AuditEvent.member_id == current.member.id,
            AuditEvent.action == "case.read",
            AuditEvent.created_at >= current.session.created_at,
        )
        .limit(1)
    )
    return found is not None


async def ensure_reason(
    session: AsyncSession,
    access: CaseAccess,
    current: CurrentMember,
    report: Report,
    reason: str | None,
) -> None:
    """Decrypting a case for the first time in a session needs a reason; it is audited."""
    if await read_reason_given(session, current, report):
        return
    if not reason or len(reason.strip()) < 3:
        raise Conflict(N_("Give the reason for opening this case."), code="access_reason_required")
    await audit.record(
        session,
        organisation_id=access.organisation.id,
        action="case.read",
        member_id=access.member_id,
        report_id=report.id,
        reason=reason.strip()[:500],
        # A case that excludes someone: not under the organisation key the excluded person holds.
        reason_key=None if report.key_for_organisation is not None else report_key(access, report),
    )


async def read_case(
    session: AsyncSession,
    access: CaseAccess,
    current: CurrentMember,
    report: Report,
    reason: str | None,
) -> CaseRead:
    """The decrypted case; the first read in a session needs a reason, which is audited."""
    await ensure_reason(session, access, current, report, reason)
    return await decrypt_case(session, access, report)


async def decrypt_case(session: AsyncSession, access: CaseAccess, report: Report) -> CaseRead:
    """The decrypted case without auditing: for a caller that audits the access itself."""
    key = report_key(access, report)
    messages, files = await reports.read_thread(session, report, key)
    notes = await session.scalars(
        select(CaseNote).where(CaseNote.report_id == report.id).order_by(CaseNote.created_at)
    )
    content = reports.read_content(key, report)
    written = read_summary(key, report)
    return CaseRead(
        **summary(report, access.organisation, _today()).model_dump(),
        report=content,
        messages=messages,
        attachments=files,
        notes=[
            NoteRead(
                id=note.id,
                body=crypto.open_sealed(
                    key, note.sealed_body, reports.aad(b"note", report.id, note.id)
                ).decode(),
                created_at=note.created_at,
                member_id=note.member_id,
            )
            for note in notes
        ],
        acknowledgement_waived=report.acknowledgement_waived,
        no_acknowledgement=report.no_acknowledgement,
        meeting_requested=report.meeting_requested,
        meeting_planned_at=report.meeting_planned_at,
        meeting_late_reason=crypto.open_sealed(
            key, report.sealed_meeting_late_reason, reports.aad(b"meeting-late-reason", report.id)
        ).decode()
        if report.sealed_meeting_late_reason
        else None,
        meeting_late=meeting_late(report, utcnow()),
        record=reports.read_record(key, report),
        triage=read_triage(key, report),
        legal_hold_reason=retention.read_hold_reason(key, report),
        measures=await _measures(session, key, report),
        register_summary=written or reports.summarise(content.description),
        register_summary_written=written is not None,
        exclusion=exclusion.read_exclusion(key, report),
    )


async def _audit(
    session: AsyncSession, access: CaseAccess, report: Report, action: str, detail: str = ""
) -> None:
    await audit.record(
        session,
        organisation_id=access.organisation.id,
        action=action,
        member_id=access.member_id,
        report_id=report.id,
        detail=detail,
    )


async def _message_to_whistleblower(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    report: Report,
    body: str,
    files: Sequence[IncomingFile] = (),
) -> ReportMessage:
    """Write to the whistleblower, and tell them by e-mail if they left an address."""
    key = report_key(access, report)
    message = ReportMessage(
        id=uuid.uuid4(),
        organisation_id=report.organisation_id,
        report_id=report.id,
        author="member",
        member_id=access.member_id,
    )
    reports.seal_message(key, message, body)
    session.add(message)
    await session.flush()
    await reports.store_files(
        session, settings, report, key, files, message.id, uploaded_by="member"
    )
    email = reports.read_content(key, report).email
    if email:
        subject, text = render_mail("case_update", organisation=access.organisation)
        # Never stored: the address is otherwise only under the report key.
        courier.send_after_commit(session, settings, to=email, subject=subject, text=text)
    return message


def _require_status(report: Report, *allowed: str) -> None:
    if report.status not in allowed:
        raise Conflict(N_("This action does not fit the case's state."), code="wrong_state")


async def acknowledge(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    report: Report,
    message: str = "",
    waive: str | None = None,
) -> None:
    """Confirm receipt in writing, or record one of the two statutory reasons not to."""
    _require_status(report, "received")
    now = utcnow()
    if waive is not None:
        report.acknowledgement_waived = waive
        await _audit(session, access, report, "case.acknowledgement_waived", waive)
    else:
        if report.no_acknowledgement:
            raise Conflict(
                N_("The whistleblower asked not to be sent an acknowledgement."),
                code="no_acknowledgement",
            )
        text = message or bilingual(
            "acknowledge",
            date=_format_date(_received_on(report)),
            due=_format_date(report.assessment_due_on),
        )
        await _message_to_whistleblower(session, settings, access, report, text)
        await _audit(session, access, report, "case.acknowledge")
    report.acknowledged_at = now
    report.status = "acknowledged"
    await session.flush()


async def extend(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    report: Report,
    reason: str,
    days: int | None = None,
) -> None:
    """Extend the assessment by up to 30 days, before the deadline, at most twice, telling why.

    An extension runs from the end of the running period, i.e. from the legal deadline as a
    weekend or holiday already moved it, and its own end moves the same way.
    """
    profile = deadlines.CZECH
    days = profile.extension_days if days is None else days
    if not 1 <= days <= profile.extension_days:
        raise ValueError("extension length out of the profile's range")
    _require_status(report, *OPEN_STATUSES)
    if report.extensions >= profile.max_extensions:
        raise Conflict(
            N_("The deadline was already extended twice, the most the Act allows."),
            code="extensions_exhausted",
        )
    if _today() > report.assessment_due_on:
        raise Conflict(
            N_("The deadline has passed: it can only be extended before it ends."),
            code="deadline_passed",
        )
    extended = deadlines.deadline(report.assessment_due_on, days)
    report.extensions += 1
    report.assessment_due_on = extended.due_on
    report.assessment_unshifted_on = extended.unshifted_on
    text = bilingual("extend", days=days, due=_format_date(report.assessment_due_on), reason=reason)
    await _message_to_whistleblower(session, settings, access, report, text)
    await _audit(session, access, report, "case.extend")
    await session.flush()


async def decide(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    report: Report,
    outcome: str,
    message: str = "",
) -> None:
    """Record the assessment's outcome and tell the whistleblower in writing.

    Not before receipt was acknowledged or the acknowledgement waived (or the whistleblower asked
    for none): once decided, a case can no longer be acknowledged.
    """
    _require_status(report, *OPEN_STATUSES)
    if report.status == CaseStatus.RECEIVED and not report.no_acknowledgement:
        raise Conflict(
            N_("Acknowledge receipt (or record why it is waived) before recording the outcome."),
            code="acknowledgement_first",
        )
    text = message or bilingual(outcome, url=EXTERNAL_CHANNEL)
    if outcome == "not_valid":
        text += "\n\n" + bilingual("not_valid_instruction", url=EXTERNAL_CHANNEL)
    report.outcome = outcome
    report.decided_at = utcnow()
    report.status = "assessed"
    await _message_to_whistleblower(session, settings, access, report, text)
    await _audit(session, access, report, "case.decision", outcome)
    await session.flush()


async def record_measures(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    report: Report,
    data: MeasureCreate,
) -> None:
    """A dated entry of measures proposed or taken on a valid report; told to the whistleblower
    when the designated person so chooses."""
    if report.outcome != "valid":
        raise Conflict(N_("Measures follow only a valid report."), code="wrong_state")
    measure = CaseMeasure(
        id=uuid.uuid4(),
        organisation_id=report.organisation_id,
        report_id=report.id,
        member_id=access.member_id,
        kind=data.kind,
        told_whistleblower=data.tell_whistleblower,
    )
    measure.sealed_body = crypto.seal(
        report_key(access, report),
        data.body.encode(),
        reports.aad(b"measure", report.id, measure.id),
    )
    session.add(measure)
    if data.tell_whistleblower:
        await _message_to_whistleblower(session, settings, access, report, data.body)
    await _audit(session, access, report, "case.measures", data.kind)
    await session.flush()


async def _measures(session: AsyncSession, key: bytes, report: Report) -> list[MeasureRead]:
    measures = await session.scalars(
        select(CaseMeasure)
        .where(CaseMeasure.report_id == report.id)
        .order_by(CaseMeasure.created_at)
    )
    return [
        MeasureRead(
            id=measure.id,
            kind=MeasureKind(measure.kind),
            body=crypto.open_sealed(
                key, measure.sealed_body, reports.aad(b"measure", report.id, measure.id)
            ).decode(),
            created_at=measure.created_at,
            member_id=measure.member_id,
            told_whistleblower=measure.told_whistleblower,
        )
        for measure in measures
    ]


async def write_message(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    report: Report,
    body: str,
    files: Sequence[IncomingFile] = (),
) -> None:
    """Write to the whistleblower."""
    await _message_to_whistleblower(session, settings, access, report, body, files)
    await _audit(session, access, report, "case.message")


async def add_note(session: AsyncSession, access: CaseAccess, report: Report, body: str) -> None:
    """An internal note, sealed with the case; the whistleblower never sees it."""
    note = CaseNote(
        id=uuid.uuid4(),
        organisation_id=report.organisation_id,
        report_id=report.id,
        member_id=access.member_id,
        sealed_body=b"",
    )
    note.sealed_body = crypto.seal(
        report_key(access, report), body.encode(), reports.aad(b"note", report.id, note.id)
    )
    session.add(note)
    await _audit(session, access, report, "case.note")
    await session.flush()


async def record_report(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    data: RecordedReportCreate,
    files: Sequence[IncomingFile] = (),
) -> reports.Submitted:
    """Open a case from a report received by telephone, in person or by post.

    The description is the written record, or the summary of an attached recording (only with
    the whistleblower's consent). A tracking code is made so the person can follow the case.
    """
    if data.recording_consent is not True and any(map(attachments.is_recording, files)):
        raise InvalidInput(
            N_(
                "A recording can be attached only with the whistleblower's consent; without it,"
                " write a record that faithfully captures the substance of the report."
            ),
            code="recording_without_consent",
            field="files",
        )
    received_at = utcnow()
    if data.received_on is not None:
        if data.received_on > _today():
            raise InvalidInput(
                N_("The date of receipt cannot be in the future."), field="received_on"
            )
        received_at = datetime.combine(data.received_on, time(12), tzinfo=UTC)
    content = ReportCreate(
        **data.model_dump(exclude={"channel", "received_on", "recording_consent"})
    )
    recorded = reports.RecordedReport(
        channel=data.channel,
        received_at=received_at,
        record=RecordRead(recording_consent=data.recording_consent),
    )
    submitted = await reports.submit_report(
        session, settings, access.organisation, content, files, recorded=recorded
    )
    await _audit(session, access, submitted.report, "case.record", data.channel)
    return submitted


async def add_record_comments(
    session: AsyncSession, access: CaseAccess, report: Report, comments: str
) -> None:
    """Add the whistleblower's comments on the record of their oral report, as they gave them."""
    reports.add_record_comment(report_key(access, report), report, comments, by="member")
    await _audit(session, access, report, "case.record_comments")
    await session.flush()


async def record_identity(
    session: AsyncSession, access: CaseAccess, report: Report, data: IdentityUpdate
) -> None:
    """The whistleblower revealed their identity: keep it with the case (and the register)."""
    key = report_key(access, report)
    content = reports.read_content(key, report).model_copy(
        update={
            "anonymous": False,
            "name": data.name,
            "birth_date": data.birth_date,
            "contact_address": data.contact_address or None,
        }
    )
    reports.seal_content(key, report, content)
    await _audit(session, access, report, "case.identity")
    await session.flush()


async def plan_meeting(
    session: AsyncSession,
    settings: Settings,
    access: CaseAccess,
    report: Report,
    data: MeetingPlan,
) -> None:
    """Plan the personal meeting the whistleblower asked for, and tell them when and where.

    A meeting after its 14-day deadline needs a recorded reason; the case shows it as late until
    the meeting's time has come.
    """
    if not report.meeting_requested:
        raise Conflict(N_("The whistleblower did not ask for a meeting."), code="wrong_state")
    when = data.when if data.when.tzinfo else data.when.replace(tzinfo=UTC)
    late = (
        report.meeting_due_on is not None and when.astimezone(PRAGUE).date() > report.meeting_due_on
    )
    if late and not data.late_reason:
        raise InvalidInput(
            N_(
                "The meeting is planned after its deadline: record the reason, e.g. the"
                " whistleblower's own wish."
            ),
            code="meeting_late_reason_required",
            field="late_reason",
        )
    report.sealed_meeting_late_reason = (
        crypto.seal(
            report_key(access, report),
            data.late_reason.encode(),
            reports.aad(b"meeting-late-reason", report.id),
        )
        if late
        else None
    )
    report.meeting_planned_at = when.astimezone(UTC)
    text = data.message or bilingual(
        "meeting", when=when.astimezone(PRAGUE).strftime("%d. %m. %Y %H:%M"), place=data.place
    )
    await _message_to_whistleblower(session, settings, access, report, text)
    await _audit(session, access, report, "case.meeting")
    await session.flush()


def read_triage(key: bytes, report: Report) -> Triage | None:
    if report.sealed_triage is None:
        return None
    plaintext = crypto.open_sealed(key, report.sealed_triage, reports.aad(b"triage", report.id))
    return Triage.model_validate_json(plaintext)


async def triage(session: AsyncSession, access: CaseAccess, report: Report, data: Triage) -> None:
    """Record the triage: priority, completeness, risk of retaliation and the protection plan."""
    report.sealed_triage = crypto.seal(
        report_key(access, report),
        data.model_dump_json().encode(),
        reports.aad(b"triage", report.id),
    )
    await _audit(session, access, report, "case.triage")
    await session.flush()


def read_summary(key: bytes, report: Report) -> str | None:
    """The register's summary a designated person wrote, or None before anyone did."""
    if report.sealed_summary is None:
        return None
    return crypto.open_sealed(
        key, report.sealed_summary, reports.aad(b"summary", report.id)
    ).decode()


async def write_summary(
    session: AsyncSession, access: CaseAccess, report: Report, summary: str
) -> None:
    """Record the summary of the report that the register (§ 21) shows."""
    report.sealed_summary = crypto.seal(
        report_key(access, report), summary.encode(), reports.aad(b"summary", report.id)
    )
    await _audit(session, access, report, "case.summary")
    await session.flush()


async def hold(session: AsyncSession, access: CaseAccess, report: Report, reason: str) -> None:
    """Put the case on legal hold: it is kept past the retention period until released."""
    reason = retention.check_hold_reason(reason)
    sealed = retention.seal_hold_reason(report_key(access, report), report, reason)
    # One statement that holds only a case not yet held, so neither a second hold (which would
    # replace the reason) nor a purge that erased the case meanwhile goes unnoticed.
    placed = await session.scalar(
        update(Report)
        .where(Report.id == report.id, Report.legal_hold_at.is_(None))
        .values(legal_hold_at=utcnow(), sealed_legal_hold=sealed)
        .returning(Report.id)
    )
    if placed is None:
        if await session.scalar(select(Report.id).where(Report.id == report.id)) is None:
            raise NotFound(CASE_NOT_FOUND)
        raise Conflict(
            N_("The case is already on legal hold. Release the hold to give another reason."),
            code="already_on_hold",
        )
    # The reason may name proceedings or people: the trail says only that a hold was placed.
    await _audit(session, access, report, "case.legal_hold")
    await session.flush()


async def release_hold(session: AsyncSession, access: CaseAccess, report: Report) -> None:
    """Release the legal hold; the next purge erases the case if its retention has passed."""
    if report.legal_hold_at is None:
        raise Conflict(N_("The case is not on legal hold."), code="not_on_hold")
    report.legal_hold_at = None
    report.sealed_legal_hold = None
    await _audit(session, access, report, "case.legal_hold_released")
    await session.flush()


async def close(session: AsyncSession, access: CaseAccess, report: Report) -> None:
    """Close an assessed case."""
    _require_status(report, "assessed")
    report.status = "closed"
    report.closed_at = utcnow()
    await _audit(session, access, report, "case.close")
    await session.flush()


async def timeline(
    session: AsyncSession, access: CaseAccess, report: Report, *, limit: int = 200
) -> list[CaseEvent]:
    """The case's audit events, newest first, with the e-mail of the person who acted.

    Reasons of access are opened with the organisation key; one that does not open is left out.
    """
    found = await audit.events(session, access.organisation.id, report_id=report.id, limit=limit)
    if report.key_for_organisation is None:
        reasons = audit.open_case_reasons(found, report_key(access, report))
    else:
        reasons = audit.open_reasons(found, private_keys(access))
    member_ids = {event.member_id for event in found if event.member_id is not None}
    emails: dict[uuid.UUID, str] = {}
    if member_ids:
        rows = await session.execute(
            select(Member.id, Member.email).where(Member.id.in_(member_ids))
        )
        emails = dict(rows.all())
    return [
        CaseEvent(
            created_at=event.created_at,
            email=emails.get(event.member_id) if event.member_id is not None else None,
            action=event.action,
            detail=reasons.get(event.id, "" if audit.is_sealed(event.detail) else event.detail),
        )
        for event in found
    ]


async def share_case(
    session: AsyncSession, settings: Settings, access: CaseAccess, report: Report, member_id: str
) -> None:
    """Let a colleague read a case that excludes someone: its key sealed to their own key."""
    try:
        wanted = uuid.UUID(member_id)
    except ValueError:
        raise NotFound(grants.NO_SUCH_MEMBER) from None
    await exclusion.share(
        session, settings, access.organisation, access.member_id, report,
        report_key(access, report), wanted,
    )  # fmt: skip


async def case_attachment(
    session: AsyncSession, access: CaseAccess, report: Report, attachment_id: str
) -> tuple[Attachment, AttachmentRead]:
    """One file of the case, its download audited; NotFound for any other."""
    found = await reports.report_attachment(
        session, report, report_key(access, report), attachment_id
    )
    await _audit(session, access, report, "case.file", attachment_id)
    return found
