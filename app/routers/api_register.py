"""JSON API of the § 21 register of reports, and its CSV export."""

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app import i18n
from app.db import SessionDep
from app.deps import AccessReasonDep, CurrentMemberDep
from app.models.base import utcnow
from app.schemas.register import RegisterList, RegisterRowRead
from app.services import cases, deadlines, register
from app.services.auth import CurrentMember

router = APIRouter(prefix="/api/v1/register", tags=["register"])
CSV_TYPE = "text/csv"
PDF_TYPE = "application/pdf"


def pdf_response(
    rows: list[register.RegisterRow],
    language: str,
    current: CurrentMember,
    accesses: list[cases.CaseAccess],
    withheld: int = 0,
) -> Response:
    """The register as a printable PDF record, named after today's date."""
    now = utcnow()
    document = register.to_pdf(
        rows,
        language,
        organisations=[access.organisation.name for access in accesses],
        exported_by=current.member.email,
        exported_at=now,
        withheld=withheld,
    )
    return Response(
        document,
        media_type=PDF_TYPE,
        headers={
            "Content-Disposition": (
                f'attachment; filename="evidence-oznameni-{deadlines.local_date(now):%Y-%m-%d}.pdf"'
            )
        },
    )


def csv_response(rows: list[register.RegisterRow], language: str, withheld: int = 0) -> Response:
    """The register as a CSV download named after today's date."""
    today = deadlines.local_date(utcnow())
    return Response(
        register.to_csv(rows, language, withheld).encode("utf-8"),
        media_type=f"{CSV_TYPE}; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="evidence-oznameni-{today:%Y-%m-%d}.csv"'
        },
    )


@router.get(
    "",
    response_model=RegisterList,
    responses={
        200: {
            "content": {
                CSV_TYPE: {"schema": {"type": "string"}},
                PDF_TYPE: {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def export_register(
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    reason: AccessReasonDep,
    organisation: Annotated[str | None, Query(max_length=40)] = None,
    lang: Annotated[str | None, Query(max_length=5)] = None,
) -> RegisterList | Response:
    """The register of reports (§ 21); CSV with `Accept: text/csv`, a printable PDF with
    `Accept: application/pdf`. Needs `X-Access-Reason`."""
    accesses = await cases.accessible_organisations(session, current, organisation)
    rows, withheld = await register.export(session, current, accesses, reason)
    accept = request.headers.get("accept", "")
    if CSV_TYPE in accept:
        return csv_response(rows, i18n.pick_language(lang), withheld)
    if PDF_TYPE in accept:
        return pdf_response(rows, i18n.pick_language(lang), current, accesses, withheld)
    return RegisterList(items=[RegisterRowRead(**asdict(row)) for row in rows], withheld=withheld)
