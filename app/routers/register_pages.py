"""The register of reports (§ 21) for designated persons: a reason, then the table or a CSV file."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from app.db import SessionDep
from app.deps import CurrentMemberDep, require_csrf
from app.errors import AppError
from app.routers.api_register import csv_response, pdf_response
from app.services import cases, register
from app.templating import render, request_language
from app.vocabulary import OUTCOME_LABELS

# Not /register: that is where an organisation signs up.
PATH = "/register-of-reports"
router = APIRouter(include_in_schema=False)
CsrfChecked = Depends(require_csrf)


def _page(
    request: Request,
    accesses: list[cases.CaseAccess],
    *,
    rows: list[register.RegisterRow] | None = None,
    withheld: int = 0,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "admin/register.html",
        {
            "organisations": [access.organisation for access in accesses],
            "rows": rows,
            "withheld": withheld,
            "values": {"reason": "", "organisation": "", "format": "table", **(values or {})},
            "error": error,
            "outcomes": OUTCOME_LABELS,
        },
        status_code=status_code,
    )


@router.get(PATH, response_class=HTMLResponse)
async def register_form(
    request: Request, session: SessionDep, current: CurrentMemberDep
) -> Response:
    accesses = await cases.accessible_organisations(session, current)
    return _page(request, accesses)


@router.post(PATH, response_class=HTMLResponse, dependencies=[CsrfChecked])
async def export_register(
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    reason: Annotated[str, Form(max_length=500)] = "",
    organisation: Annotated[str, Form(max_length=40)] = "",
    output: Annotated[Literal["table", "csv", "pdf"], Form(alias="format")] = "table",
) -> Response:
    everyone = await cases.accessible_organisations(session, current)
    # A slug the member does not serve is a 404, as in the API.
    chosen = (
        await cases.accessible_organisations(session, current, organisation)
        if organisation
        else everyone
    )
    values = {"reason": reason, "organisation": organisation, "format": output}
    try:
        rows, withheld = await register.export(session, current, chosen, reason)
    except AppError as exc:
        return _page(
            request, everyone, values=values, error=exc.message, status_code=exc.status_code
        )
    if output == "csv":
        return csv_response(rows, request_language(request), withheld)
    if output == "pdf":
        return pdf_response(rows, request_language(request), current, chosen, withheld)
    return _page(request, everyone, rows=rows, withheld=withheld, values=values)
