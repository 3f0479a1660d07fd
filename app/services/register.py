"""The register of reports (§ 21 of Act No. 171/2023 Sb.), built from the encrypted cases.

The register holds the whistleblower's identity and a summary of what they reported, so it is
decrypted on demand for a logged-in designated person, never stored, and every export is audited.
"""

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import i18n
from app.errors import InvalidInput
from app.i18n import N_
from app.models import Report
from app.services import audit, deadlines, reports
from app.services.auth import CurrentMember
from app.services.cases import CaseAccess, report_key
from app.vocabulary import OUTCOME_LABELS

SUMMARY_LENGTH = 300
MIN_REASON_LENGTH = 3
MAX_REASON_LENGTH = 500
CSV_DATE_FORMAT = "%d.%m.%Y"
# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = (
    N_("Organisation"),
    N_("Reference"),
    N_("Date of receipt"),
    N_("Whistleblower's name"),
    N_("Date of birth"),
    N_("Contact address"),
    N_("Summary of the report"),
    N_("Person concerned"),
    N_("Assessment completed on"),
    N_("Result of the assessment"),
)


@dataclass(frozen=True)
class RegisterRow:
    """One report as the register lists it; the identity is None when unknown (anonymous)."""

    report_id: uuid.UUID
    organisation: str
    organisation_name: str
    reference: str
    received_on: date
    name: str | None
    birth_date: date | None
    contact_address: str | None
    summary: str
    persons_involved: str | None
    assessed_on: date | None
    outcome: str | None


def summarise(description: str, length: int = SUMMARY_LENGTH) -> str:
    """The first `length` characters of the text on one line, cut at a word, with "…"."""
    text = " ".join(description.split())
    if len(text) <= length:
        return text
    cut = text[:length]
    if text[length] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _row(access: CaseAccess, report: Report) -> RegisterRow:
    content = reports.read_content(report_key(access, report), report)
    known = not content.anonymous
    return RegisterRow(
        report_id=report.id,
        organisation=access.organisation.slug,
        organisation_name=access.organisation.name,
        reference=report.reference,
        received_on=deadlines.local_date(report.received_at),
        name=(content.name or None) if known else None,
        birth_date=content.birth_date if known else None,
        contact_address=(content.contact_address or None) if known else None,
        summary=summarise(content.description),
        persons_involved=content.persons_involved or None,
        assessed_on=deadlines.local_date(report.decided_at) if report.decided_at else None,
        outcome=report.outcome,
    )


async def register_rows(session: AsyncSession, accesses: Sequence[CaseAccess]) -> list[RegisterRow]:
    """The register of the given organisations, oldest report first, decrypted."""
    by_id = {access.organisation.id: access for access in accesses}
    if not by_id:
        return []
    result = await session.scalars(
        select(Report)
        .where(Report.organisation_id.in_(list(by_id)))
        .order_by(Report.received_at, Report.reference_year, Report.reference_number)
    )
    return [_row(by_id[report.organisation_id], report) for report in result]


def check_reason(reason: str | None) -> str:
    """The reason of an export, stripped; InvalidInput when it is missing or too long."""
    reason = (reason or "").strip()
    if not MIN_REASON_LENGTH <= len(reason) <= MAX_REASON_LENGTH:
        raise InvalidInput(
            N_("Give the reason for the export (3 to 500 characters)."),
            code="access_reason_required",
            field="reason",
        )
    return reason


async def export(
    session: AsyncSession,
    current: CurrentMember,
    accesses: Sequence[CaseAccess],
    reason: str | None,
) -> list[RegisterRow]:
    """The register, after recording a `register.export` event with the reason per organisation."""
    reason = check_reason(reason)
    for access in accesses:
        await audit.record(
            session,
            organisation_id=access.organisation.id,
            action="register.export",
            member_id=current.member.id,
            reason=reason,
        )
    return await register_rows(session, accesses)


def outcome_label(outcome: str | None, language: str) -> str:
    if outcome is None:
        return ""
    return i18n.translations(language).ugettext(OUTCOME_LABELS.get(outcome, outcome))


def _cell(value: str | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime(CSV_DATE_FORMAT)
    # A leading apostrophe makes the spreadsheet show the value as text, never run it.
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def to_csv(rows: Sequence[RegisterRow], language: str) -> str:
    """The register as CSV for Excel: BOM, ";" between cells, a header in the language."""
    language = i18n.pick_language(language)
    translations = i18n.translations(language)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([_cell(translations.ugettext(column)) for column in COLUMNS])
    for row in rows:
        values: list[str | date | None] = [
            row.organisation_name,
            row.reference,
            row.received_on,
            row.name,
            row.birth_date,
            row.contact_address,
            row.summary,
            row.persons_involved,
            row.assessed_on,
            outcome_label(row.outcome, language),
        ]
        writer.writerow([_cell(value) for value in values])
    return buffer.getvalue()
