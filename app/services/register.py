"""The register of reports (§ 21 of Act No. 171/2023 Sb.), built from the encrypted cases.

The register holds the whistleblower's identity and a summary of what they reported, so it is
decrypted on demand for a logged-in designated person, never stored, and every export is audited.
"""

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from fpdf import FPDF, FontFace
from fpdf.enums import XPos, YPos
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import i18n
from app.errors import InvalidInput
from app.i18n import N_
from app.models import Report
from app.services import audit, deadlines, reports
from app.services.auth import CurrentMember
from app.services.cases import CaseAccess, read_summary, readable, report_key
from app.services.invoice_pdf import FONT, FONTS_DIR
from app.vocabulary import OUTCOME_LABELS

MIN_REASON_LENGTH = 3
MAX_REASON_LENGTH = 500
CSV_DATE_FORMAT = "%d.%m.%Y"
# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# Named as § 21 (1) names them.
COLUMNS = (
    N_("Organisation"),
    N_("Reference"),
    N_("Date of receipt"),
    N_("Whistleblower's name and surname"),
    N_("Date of birth"),
    N_("Contact address"),
    N_("Other data from which the identity can be inferred"),
    N_("Summary of the report"),
    N_("Person against whom the report is directed"),
    N_("Date of completing the assessment"),
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
    other_identity: str | None
    summary: str
    person_concerned: str | None
    assessed_on: date | None
    outcome: str | None


def _row(access: CaseAccess, report: Report) -> RegisterRow:
    key = report_key(access, report)
    content = reports.read_content(key, report)
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
        other_identity=", ".join(filter(None, (content.phone, content.email))) or None,
        summary=read_summary(key, report) or reports.summarise(content.description),
        person_concerned=content.person_concerned or None,
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
        .where(Report.organisation_id.in_(list(by_id)), readable(accesses))
        .order_by(Report.received_at, Report.reference_year, Report.reference_number)
    )
    return [_row(by_id[report.organisation_id], report) for report in result]


async def withheld(session: AsyncSession, accesses: Sequence[CaseAccess]) -> int:
    """How many reports of these organisations the member may not read (they exclude someone)."""
    if not accesses:
        return 0
    count = await session.scalar(
        select(func.count())
        .select_from(Report)
        .where(
            Report.organisation_id.in_([access.organisation.id for access in accesses]),
            ~readable(accesses),
        )
    )
    return count or 0


WITHHELD = N_(
    "Reports withheld from you: %(count)s. Only other designated persons can read them, so they "
    "are not listed here."
)


def withheld_note(count: int, language: str) -> str:
    return i18n.translations(language).ugettext(WITHHELD) % {"count": count}


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
) -> tuple[list[RegisterRow], int]:
    """The register, after recording a `register.export` event with the reason per organisation,
    and how many reports are withheld from this member."""
    reason = check_reason(reason)
    for access in accesses:
        await audit.record(
            session,
            organisation_id=access.organisation.id,
            action="register.export",
            member_id=current.member.id,
            reason=reason,
        )
    return await register_rows(session, accesses), await withheld(session, accesses)


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


def _values(row: RegisterRow, language: str) -> list[str | date | None]:
    return [
        row.organisation_name,
        row.reference,
        row.received_on,
        row.name,
        row.birth_date,
        row.contact_address,
        row.other_identity,
        row.summary,
        row.person_concerned,
        row.assessed_on,
        outcome_label(row.outcome, language),
    ]


class _RegisterPdf(FPDF):
    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, "", 7)
        self.cell(0, 5, f"{self.page_no()} / {{nb}}", align="R")


def to_pdf(
    rows: Sequence[RegisterRow],
    language: str,
    *,
    organisations: Sequence[str],
    exported_by: str,
    exported_at: datetime,
    withheld: int = 0,
) -> bytes:
    """The register as a printable record: organisation, date of export and who exported it."""
    language = i18n.pick_language(language)
    gettext = i18n.translations(language).ugettext
    pdf = _RegisterPdf(orientation="L", format="A4")
    pdf.set_margins(10, 10, 10)
    pdf.set_auto_page_break(True, margin=14)
    pdf.add_font(FONT, "", FONTS_DIR / "DejaVuSans.ttf")
    pdf.add_font(FONT, "B", FONTS_DIR / "DejaVuSans-Bold.ttf")
    pdf.set_creation_date(exported_at)
    pdf.set_title(gettext("Register of reports"))
    pdf.set_lang(language)
    pdf.add_page()
    pdf.set_font(FONT, "B", 14)
    pdf.cell(0, 8, gettext("Register of reports"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9)
    moment = exported_at.astimezone(ZoneInfo(deadlines.CZECH.timezone))
    for line in (
        gettext("Section 21 of Act No. 171/2023 Sb., on the protection of whistleblowers"),
        gettext("Organisation: %(name)s") % {"name": ", ".join(organisations)},
        gettext("Exported on %(when)s (Prague time) by %(email)s")
        % {"when": moment.strftime("%d. %m. %Y %H:%M"), "email": exported_by},
    ):
        pdf.multi_cell(0, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    pdf.set_font(FONT, "", 7)
    widths = (28, 16, 17, 26, 16, 28, 26, 50, 26, 18, 26)
    with pdf.table(
        col_widths=widths,
        text_align="LEFT",
        headings_style=FontFace(emphasis="BOLD"),
        repeat_headings=1,
        line_height=3.5,
    ) as table:
        table.row([gettext(column) for column in COLUMNS])
        for row in rows:
            table.row([_text(value) for value in _values(row, language)])
    if not rows:
        pdf.ln(3)
        pdf.cell(0, 5, gettext("No reports yet."))
    if withheld:
        pdf.ln(3)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 5, withheld_note(withheld, language))
    return bytes(pdf.output())


def _text(value: str | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime("%d. %m. %Y")
    return value


def to_csv(rows: Sequence[RegisterRow], language: str, withheld: int = 0) -> str:
    """The register as CSV for Excel: BOM, ";" between cells, a header in the language."""
    language = i18n.pick_language(language)
    translations = i18n.translations(language)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([_cell(translations.ugettext(column)) for column in COLUMNS])
    for row in rows:
        writer.writerow([_cell(value) for value in _values(row, language)])
    if withheld:
        writer.writerow([_cell(withheld_note(withheld, language))])
    return buffer.getvalue()
