"""Indicators for management (ISO 37002) and the audit trail as a designated person reads it.

The figures come from the cases' metadata (channel, outcome, dates, deadlines), except the area,
which the whistleblower chose inside the sealed report: counting areas decrypts each report of
the year, so every page view records one `stats.read` audit event. Only the counts leave here.
"""

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEvent, Member, Organisation, PurgedReport, Report, ReportRecipient
from app.models.base import utcnow
from app.services import audit, cases, deadlines, reports
from app.services.cases import CaseAccess

OUTCOME_KEYS = ("valid", "not_valid", "not_a_report", "pending")
# The area key of a report whose whistleblower chose none.
NO_AREA = ""


@dataclass(frozen=True)
class Share:
    """Deadlines met out of the deadlines that could be judged (done, or passed undone)."""

    met: int
    total: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.met / self.total) if self.total else None


@dataclass(frozen=True)
class Statistics:
    """An organisation's indicators for the cases received in one calendar year."""

    year: int
    years: list[int]
    total: int
    # Of `total`, the cases erased after the retention period: their tombstones keep the
    # channel, the dates and the outcome, not the area or the triage.
    purged: int
    per_month: list[int]
    per_channel: dict[str, int]
    per_area: dict[str, int]
    per_outcome: dict[str, int]
    # ISO 37002 triage: cases not yet triaged count as "not_triaged".
    per_priority: dict[str, int]
    per_retaliation_risk: dict[str, int]
    median_days_to_acknowledgement: float | None
    median_days_to_outcome: float | None
    acknowledgements_on_time: Share
    assessments_on_time: Share
    overdue: int
    extensions: int
    # Of `total`, cases this person may not read (the whistleblower excluded a designated
    # person): counted by month only, without any other detail.
    withheld: int = 0


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    created_at: datetime
    email: str | None
    action: str
    report_id: uuid.UUID | None
    # None when the event concerns no report or the report was purged.
    reference: str | None
    detail: str
    # A reason of access that the viewer's keys do not open.
    sealed: bool = False
    # The start of the event's chain hash, to compare with a copy noted elsewhere.
    hash: str = ""


@dataclass(frozen=True)
class AuditLog:
    verification: audit.VerifyResult
    entries: list[AuditEntry]
    limit: int


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    zone = ZoneInfo(deadlines.CZECH.timezone)
    start = datetime.combine(date(year, 1, 1), time(), zone)
    end = datetime.combine(date(year + 1, 1, 1), time(), zone)
    return start, end


def _median(values: list[int]) -> float | None:
    return float(median(values)) if values else None


def _days(start: datetime, end: datetime) -> int:
    return (deadlines.local_date(end) - deadlines.local_date(start)).days


def _by_count(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


async def _years(session: AsyncSession, organisation_id: uuid.UUID, current: int) -> list[int]:
    firsts = [
        await session.scalar(
            select(func.min(model.received_at)).where(model.organisation_id == organisation_id)
        )
        for model in (Report, PurgedReport)
    ]
    known = [deadlines.local_date(first).year for first in firsts if first is not None]
    start = min(known, default=current)
    return list(range(min(start, current), current + 1))


def _acknowledgement_met(report: Report, today: date) -> bool | None:
    """Whether the acknowledgement was sent in time; None when it cannot be judged (yet)."""
    due = report.acknowledgement_due_on
    # Waived or not wanted: no acknowledgement was due.
    if due is None or report.acknowledgement_waived or report.no_acknowledgement:
        return None
    if report.acknowledged_at is not None:
        return deadlines.local_date(report.acknowledged_at) <= due
    return False if today > due else None


def _assessment_met(report: Report, today: date) -> bool | None:
    if report.decided_at is not None:
        return deadlines.local_date(report.decided_at) <= report.assessment_due_on
    return False if today > report.assessment_due_on else None


def _share(results: list[bool | None]) -> Share:
    judged = [result for result in results if result is not None]
    return Share(met=sum(judged), total=len(judged))


NOT_TRIAGED = "not_triaged"


async def organisation_statistics(
    session: AsyncSession, access: CaseAccess, *, year: int | None = None
) -> Statistics:
    """The indicators of the cases received in `year` (default this year); audited as a read."""
    organisation = access.organisation
    today = deadlines.local_date(utcnow())
    year = year or today.year
    start, end = _year_bounds(year)
    found = list(
        await session.scalars(
            select(Report)
            .where(
                Report.organisation_id == organisation.id,
                Report.received_at >= start,
                Report.received_at < end,
            )
            .order_by(Report.received_at)
        )
    )
    purged = list(
        await session.scalars(
            select(PurgedReport).where(
                PurgedReport.organisation_id == organisation.id,
                PurgedReport.received_at >= start,
                PurgedReport.received_at < end,
            )
        )
    )
    withheld = [
        report
        for report in found
        if report.key_for_organisation is None and report.id not in access.sealed_for_member
    ]
    withheld_ids = {report.id for report in withheld}
    found = [report for report in found if report.id not in withheld_ids]
    per_month = [0] * 12
    for report in withheld:
        per_month[deadlines.local_date(report.received_at).month - 1] += 1
    channels: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    priorities: Counter[str] = Counter()
    risks: Counter[str] = Counter()
    outcomes: Counter[str] = Counter(dict.fromkeys(OUTCOME_KEYS, 0))
    everything: list[Report | PurgedReport] = [*purged, *found]
    for case in everything:
        per_month[deadlines.local_date(case.received_at).month - 1] += 1
        channels[case.channel] += 1
        outcomes[case.outcome or "pending"] += 1
    for report in found:
        key = cases.report_key(access, report)
        areas[reports.read_content(key, report).category or NO_AREA] += 1
        triage = cases.read_triage(key, report)
        priorities[triage.priority if triage else NOT_TRIAGED] += 1
        risks[triage.retaliation_risk if triage else NOT_TRIAGED] += 1
    await audit.record(
        session,
        organisation_id=organisation.id,
        action="stats.read",
        member_id=access.member_id,
        detail="statistics",
    )
    acknowledged = [
        _days(r.received_at, r.acknowledged_at)
        for r in found
        if r.acknowledged_at is not None and not r.acknowledgement_waived
    ]
    decided = [
        _days(case.received_at, case.decided_at)
        for case in everything
        if case.decided_at is not None
    ]
    return Statistics(
        year=year,
        years=await _years(session, organisation.id, today.year),
        total=len(found) + len(purged) + len(withheld),
        purged=len(purged),
        per_month=per_month,
        per_channel=_by_count(channels),
        per_area=_by_count(areas),
        per_outcome={key: outcomes[key] for key in OUTCOME_KEYS},
        per_priority=_by_count(priorities),
        per_retaliation_risk=_by_count(risks),
        median_days_to_acknowledgement=_median(acknowledged),
        median_days_to_outcome=_median(decided),
        acknowledgements_on_time=_share([_acknowledgement_met(r, today) for r in found]),
        assessments_on_time=_share([_assessment_met(r, today) for r in found]),
        overdue=sum(cases.summary(r, organisation, today).overdue for r in found),
        extensions=sum(r.extensions for r in found),
        withheld=len(withheld),
    )


async def audit_log(
    session: AsyncSession,
    organisation: Organisation,
    private_keys: Mapping[int, bytes],
    viewer_id: uuid.UUID,
    *,
    limit: int = 200,
) -> AuditLog:
    """The chain's verification and its newest events, with who acted and on which case.

    Reasons of access show to a viewer whose `private_keys` (by key version) open them.
    """
    verification = await audit.verify(session, organisation.id)
    found: list[AuditEvent] = await audit.events(session, organisation.id, limit=limit)
    reasons = audit.open_reasons(found, private_keys)
    member_ids = {event.member_id for event in found if event.member_id is not None}
    report_ids = {event.report_id for event in found if event.report_id is not None}
    emails: dict[uuid.UUID, str] = {}
    if member_ids:
        rows = await session.execute(
            select(Member.id, Member.email).where(Member.id.in_(member_ids))
        )
        emails = dict(rows.all())
    references: dict[uuid.UUID, str] = {}
    hidden: set[uuid.UUID] = set()
    if report_ids:
        # Columns only: the sealed content is not needed for a reference.
        numbered = await session.execute(
            select(Report.id, Report.reference_year, Report.reference_number).where(
                Report.organisation_id == organisation.id, Report.id.in_(report_ids)
            )
        )
        references = {
            report_id: f"{year}-{number:04d}" for report_id, year, number in numbered.all()
        }
        # A case that excludes someone is named only to those who may read it.
        hidden = set(
            await session.scalars(
                select(Report.id).where(
                    Report.organisation_id == organisation.id,
                    Report.id.in_(report_ids),
                    Report.key_for_organisation.is_(None),
                    Report.id.not_in(
                        select(ReportRecipient.report_id).where(
                            ReportRecipient.member_id == viewer_id
                        )
                    ),
                )
            )
        )
    entries = [
        AuditEntry(
            seq=event.seq,
            created_at=event.created_at,
            email=emails.get(event.member_id) if event.member_id is not None else None,
            action=event.action,
            report_id=None if event.report_id in hidden else event.report_id,
            reference=None
            if event.report_id in hidden
            else references.get(event.report_id)
            if event.report_id is not None
            else None,
            detail=reasons.get(event.id, "" if audit.is_sealed(event.detail) else event.detail),
            sealed=event.id not in reasons and audit.is_sealed(event.detail),
            hash=audit.short_hash(event.hash),
        )
        for event in found
    ]
    return AuditLog(verification=verification, entries=entries, limit=limit)
