"""Pages for designated persons' accounts: the team, accepting an invitation, recovery."""

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from app.config import Settings
from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep, require_csrf
from app.errors import AppError
from app.i18n import N_
from app.routers.uploads import rate_limit
from app.schemas.team import (
    InvitationAccept,
    InviteRequest,
    PasswordChange,
    PublishedNameUpdate,
    RecoveryRequest,
)
from app.services import grants, organisations, rotation, team
from app.templating import redirect, render

router = APIRouter(include_in_schema=False)
CsrfChecked = Depends(require_csrf)
PASSWORD_HELP = N_("The password needs 10 to 256 characters.")


async def _team_page(
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    slug: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    recovery_key: str | None = None,
) -> HTMLResponse:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    members = await team.list_members(session, request.app.state.settings, organisation)
    return render(
        request,
        "admin/team.html",
        {
            "organisation": organisation,
            "members": members,
            "me": next(m for m in members if m.member_id == current.member.id),
            "rotating": await rotation.in_progress(session, organisation.id),
            "recovery_key": recovery_key,
            "error": error,
            "done": request.query_params.get("done"),
        },
        status_code=status_code,
    )


def _after_rotation(
    request: Request,
    background: BackgroundTasks,
    settings: Settings,
    job: rotation.Job | None,
) -> None:
    if job is not None:
        background.add_task(
            rotation.complete_in_background, request.app.state.sessionmaker, settings, job
        )


@router.get("/organisations/{slug}/team", response_class=HTMLResponse)
async def team_page(
    slug: str, request: Request, session: SessionDep, current: CurrentMemberDep
) -> Response:
    return await _team_page(request, session, current, slug)


@router.post("/organisations/{slug}/team/invite", dependencies=[CsrfChecked])
async def invite(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        data = InviteRequest(email=email)
        await team.invite(session, settings, organisation, current, str(data.email))
    except ValidationError:
        return await _team_page(
            request, session, current, slug, error=N_("Enter a valid e-mail address."),
            status_code=422,
        )  # fmt: skip
    except AppError as exc:
        return await _team_page(
            request, session, current, slug, error=exc.message, status_code=exc.status_code
        )
    return redirect(request, f"/organisations/{slug}/team", done="invited")


@router.post("/organisations/{slug}/team/{member_id}/remove", dependencies=[CsrfChecked])
async def remove(
    slug: str,
    member_id: uuid.UUID,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        job = await team.remove_member(session, settings, organisation, current, member_id)
    except AppError as exc:
        return await _team_page(
            request, session, current, slug, error=exc.message, status_code=exc.status_code
        )
    _after_rotation(request, background, settings, job)
    if job is not None and job.recovery_key is not None:
        return await _team_page(request, session, current, slug, recovery_key=job.recovery_key)
    return redirect(request, f"/organisations/{slug}/team", done="removed")


@router.post("/organisations/{slug}/team/{member_id}/confirm", dependencies=[CsrfChecked])
async def confirm_access(
    slug: str,
    member_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        await grants.confirm_access(session, settings, organisation, current, member_id)
    except AppError as exc:
        return await _team_page(
            request, session, current, slug, error=exc.message, status_code=exc.status_code
        )
    return redirect(request, f"/organisations/{slug}/team", done="confirmed")


@router.post("/organisations/{slug}/team/rotate-key", dependencies=[CsrfChecked])
async def rotate_key(
    slug: str,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        job = await team.rotate_key(session, settings, organisation, current)
    except AppError as exc:
        return await _team_page(
            request, session, current, slug, error=exc.message, status_code=exc.status_code
        )
    _after_rotation(request, background, settings, job)
    if job.recovery_key is not None:
        return await _team_page(request, session, current, slug, recovery_key=job.recovery_key)
    return redirect(request, f"/organisations/{slug}/team", done="rotated")


@router.post("/organisations/{slug}/team/{member_id}/appointment", dependencies=[CsrfChecked])
async def appointment(
    slug: str,
    member_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    appointed_on: Annotated[date | None, Form()] = None,
    instructed_on: Annotated[date | None, Form()] = None,
    instruction_document: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await team.record_appointment(
        session, organisation, current, member_id, appointed_on, instructed_on,
        instruction_document.strip(),
    )  # fmt: skip
    return redirect(request, f"/organisations/{slug}/team", done="saved")


@router.post("/organisations/{slug}/team/{member_id}/published-name", dependencies=[CsrfChecked])
async def published_name(
    slug: str,
    member_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    cleaned = PublishedNameUpdate(published_name=name).published_name
    await team.set_published_name(session, organisation, current, member_id, cleaned)
    return redirect(request, f"/organisations/{slug}/team", done="saved")


@router.get("/invite/{token}", response_class=HTMLResponse)
async def invitation_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    invitation = await team.find_invitation(session, settings, token)
    return render(
        request,
        "public/invitation.html",
        {"email": invitation.email, "token": token, "error": None},
    )


@router.post("/invite/{token}", response_class=HTMLResponse)
async def accept_invitation(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    password: Annotated[str, Form(max_length=1000)] = "",
    password_again: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    rate_limit(request, "invitation", 20, 3600)
    invitation = await team.find_invitation(session, settings, token)
    error = None
    if password != password_again:
        error = N_("The passwords do not match.")
    else:
        try:
            data = InvitationAccept(token=token, password=password)
        except ValidationError:
            error = PASSWORD_HELP
        else:
            await team.accept_invitation(session, settings, data.token, data.password)
            return redirect(request, "/login")
    return render(
        request,
        "public/invitation.html",
        {"email": invitation.email, "token": token, "error": error},
        status_code=422,
    )


@router.get("/recovery", response_class=HTMLResponse)
async def recovery_page(request: Request) -> Response:
    return render(request, "public/recovery.html", {"values": {}, "error": None})


@router.post("/recovery", response_class=HTMLResponse)
async def recover(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    organisation: Annotated[str, Form(max_length=40)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    recovery_key: Annotated[str, Form(max_length=200)] = "",
    new_password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    rate_limit(request, "recovery", 10, 3600)
    values = {"organisation": organisation, "email": email}
    try:
        data = RecoveryRequest(
            organisation=organisation,
            email=email,
            recovery_key=recovery_key,
            new_password=new_password,
        )
        await team.recover(
            session, settings, data.organisation, data.email, data.recovery_key, data.new_password
        )
    except ValidationError:
        error = N_("Fill in every field; the password needs 10 to 256 characters.")
    except AppError as exc:
        error = exc.message
    else:
        return redirect(request, "/login")
    return render(
        request, "public/recovery.html", {"values": values, "error": error}, status_code=422
    )


@router.post("/profile/password", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def change_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    current_password: Annotated[str, Form(max_length=256)] = "",
    new_password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        data = PasswordChange(current_password=current_password, new_password=new_password)
        await team.change_password(
            session, settings, current, data.current_password, data.new_password
        )
    except ValidationError:
        error = PASSWORD_HELP
    except AppError as exc:
        error = exc.message
    else:
        return redirect(request, "/profile", done="password")
    return render(
        request,
        "admin/profile.html",
        {
            "member": current.member,
            "fingerprint": current.key_fingerprint,
            "setup": None,
            "qr": None,
            "error": error,
        },
        status_code=422,
    )
