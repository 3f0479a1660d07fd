"""An organisation leaving: cancel the registration (or take it back), API and page."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep, require_csrf
from app.errors import AppError, InvalidInput
from app.i18n import N_
from app.models import Organisation
from app.services import deadlines, leaving, organisations
from app.templating import redirect, render

api = APIRouter(prefix="/api/v1/organisations/{slug}/cancellation", tags=["organisations"])
pages = APIRouter(include_in_schema=False)
CsrfChecked = Depends(require_csrf)


class CancellationRead(BaseModel):
    cancelled_at: datetime | None
    erase_after: datetime | None


def _read(organisation: Organisation) -> CancellationRead:
    return CancellationRead(
        cancelled_at=organisation.cancelled_at, erase_after=leaving.erasure_due(organisation)
    )


@api.get("")
async def read_cancellation(
    slug: str, session: SessionDep, current: CurrentMemberDep
) -> CancellationRead:
    """Whether the registration is cancelled and when the organisation's data is erased."""
    return _read(await organisations.member_organisation(session, current.member.id, slug))


@api.post("")
async def cancel(
    slug: str, session: SessionDep, settings: SettingsDep, current: CurrentMemberDep
) -> CancellationRead:
    """Cancel the registration: the form closes now; everything is erased after 80 days."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await leaving.cancel(session, settings, organisation, current.member.id)
    return _read(organisation)


@api.delete("")
async def withdraw(
    slug: str, session: SessionDep, settings: SettingsDep, current: CurrentMemberDep
) -> CancellationRead:
    """Withdraw the cancellation while the data still exists."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await leaving.withdraw_cancellation(session, settings, organisation, current.member.id)
    return _read(organisation)


def _page(
    request: Request, organisation: Organisation, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    erase_after = leaving.erasure_due(organisation)
    return render(
        request,
        "admin/leave.html",
        {
            "organisation": organisation,
            "cancelled_on": organisation.cancelled_at
            and deadlines.local_date(organisation.cancelled_at),
            "erase_on": erase_after and deadlines.local_date(erase_after),
            "export_window": leaving.EXPORT_WINDOW_DAYS,
            "error": error,
        },
        status_code=status_code,
    )


@pages.get("/organisations/{slug}/leave", response_class=HTMLResponse)
async def leave_page(
    slug: str, request: Request, session: SessionDep, current: CurrentMemberDep
) -> Response:
    return _page(request, await organisations.member_organisation(session, current.member.id, slug))


@pages.post("/organisations/{slug}/leave", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def leave(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    confirm: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        if confirm.strip().lower() != organisation.slug:
            raise InvalidInput(
                N_("Type the address of the form to confirm the cancellation."), field="confirm"
            )
        await leaving.cancel(session, settings, organisation, current.member.id)
    except AppError as exc:
        return _page(request, organisation, exc.message, exc.status_code)
    return redirect(request, f"/organisations/{organisation.slug}/leave")


@pages.post(
    "/organisations/{slug}/leave/withdraw",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def withdraw_page(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        await leaving.withdraw_cancellation(session, settings, organisation, current.member.id)
    except AppError as exc:
        return _page(request, organisation, exc.message, exc.status_code)
    return redirect(request, f"/organisations/{organisation.slug}/leave")
