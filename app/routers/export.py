"""The organisation's full export as a ZIP: the JSON API's download and the page asking why."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from app import i18n
from app.db import SessionDep
from app.deps import AccessReasonDep, CurrentMemberDep, require_csrf
from app.errors import InvalidInput
from app.models import Organisation
from app.services import cases
from app.services.export import Export, export_zip
from app.templating import render, request_language

router = APIRouter()
CsrfChecked = Depends(require_csrf)
ZIP_TYPE = "application/zip"


def zip_response(export: Export) -> StreamingResponse:
    return StreamingResponse(
        export.chunks,
        media_type=ZIP_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )


@router.get(
    "/api/v1/organisations/{slug}/export",
    tags=["organisations"],
    response_class=StreamingResponse,
    responses={200: {"content": {ZIP_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def export_organisation(
    slug: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    reason: AccessReasonDep,
    lang: Annotated[str | None, Query(max_length=5)] = None,
) -> StreamingResponse:
    """Everything the organisation holds as one ZIP: the cases decrypted with their files, the
    register and the audit trail. Needs `X-Access-Reason` every time; audited."""
    export = await export_zip(
        session,
        request.app.state.sessionmaker,
        current,
        slug,
        reason,
        i18n.pick_language(lang),
    )
    return zip_response(export)


def _page(
    request: Request,
    organisation: Organisation,
    *,
    reason: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "admin/export.html",
        {"organisation": organisation, "reason": reason, "error": error},
        status_code=status_code,
    )


@router.get("/organisations/{slug}/export", response_class=HTMLResponse, include_in_schema=False)
async def export_form(
    slug: str, request: Request, session: SessionDep, current: CurrentMemberDep
) -> HTMLResponse:
    [access] = await cases.accessible_organisations(session, current, slug)
    return _page(request, access.organisation)


@router.post(
    "/organisations/{slug}/export",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=[CsrfChecked],
)
async def export_from_page(
    slug: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    language = request_language(request)
    try:
        export = await export_zip(
            session, request.app.state.sessionmaker, current, slug, reason, language
        )
    except InvalidInput as exc:
        [access] = await cases.accessible_organisations(session, current, slug)
        return _page(
            request, access.organisation, reason=reason, error=exc.message, status_code=422
        )
    return zip_response(export)
