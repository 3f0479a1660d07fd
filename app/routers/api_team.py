"""JSON API: the organisation's designated persons, invitations, password and recovery."""

import uuid

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse

from app.config import Settings
from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep
from app.routers.uploads import rate_limit
from app.schemas.team import (
    AppointmentUpdate,
    InvitationAccept,
    InviteRequest,
    KeyRotationRead,
    MemberList,
    MemberRead,
    PasswordChange,
    PublishedNameUpdate,
    RecoveryRequest,
)
from app.services import grants, organisations, rotation, team

router = APIRouter(prefix="/api/v1", tags=["team"])


@router.get("/organisations/{slug}/members")
async def list_members(
    slug: str, session: SessionDep, settings: SettingsDep, current: CurrentMemberDep
) -> MemberList:
    """The designated persons, whether they have access yet, their key fingerprints, and their
    appointment records."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    rows = await team.list_members(session, settings, organisation)
    return MemberList(items=[MemberRead(**row.__dict__) for row in rows])


@router.post("/organisations/{slug}/members", status_code=202)
async def invite_member(
    slug: str,
    data: InviteRequest,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> None:
    """Invite a designated person by e-mail (an existing account is added at once)."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await team.invite(session, settings, organisation, current, str(data.email))


@router.delete(
    "/organisations/{slug}/members/{member_id}",
    status_code=204,
    responses={200: {"model": KeyRotationRead}},
)
async def remove_member(
    slug: str,
    member_id: uuid.UUID,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    """Remove a designated person; if they had access, the organisation key is rotated.

    204, or 200 with a new recovery key (shown only now) when the rotation had to replace an
    organisation's recovery key from before recovery key pairs.
    """
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    job = await team.remove_member(session, settings, organisation, current, member_id)
    return _rotation_answer(request, background, settings, job, no_content=True)


@router.post("/organisations/{slug}/members/{member_id}/grant", status_code=204)
async def confirm_access(
    slug: str,
    member_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> None:
    """Confirm a colleague's access: the organisation key is sealed to their public key.

    Compare the member's `fingerprint` with the one they see on their own profile first.
    """
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await grants.confirm_access(session, settings, organisation, current, member_id)


@router.post("/organisations/{slug}/key-rotation", status_code=202, response_model=KeyRotationRead)
async def rotate_key(
    slug: str,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    """Rotate the organisation key (or take up a rotation left unfinished)."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    job = await team.rotate_key(session, settings, organisation, current)
    return _rotation_answer(request, background, settings, job)


def _rotation_answer(
    request: Request,
    background: BackgroundTasks,
    settings: Settings,
    job: rotation.Job | None,
    *,
    no_content: bool = False,
) -> Response:
    if job is None:
        return Response(status_code=204)
    background.add_task(
        rotation.complete_in_background, request.app.state.sessionmaker, settings, job
    )
    if no_content and job.recovery_key is None:
        return Response(status_code=204)
    body = KeyRotationRead(recovery_key=job.recovery_key)
    return JSONResponse(body.model_dump(), status_code=200 if no_content else 202)


@router.put("/organisations/{slug}/members/{member_id}/appointment", status_code=204)
async def record_appointment(
    slug: str,
    member_id: uuid.UUID,
    data: AppointmentUpdate,
    session: SessionDep,
    current: CurrentMemberDep,
) -> None:
    """Record the appointment and the written instruction of duties."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await team.record_appointment(
        session,
        organisation,
        current,
        member_id,
        data.appointed_on,
        data.instructed_on,
        data.instruction_document,
    )


@router.put("/organisations/{slug}/members/{member_id}/published-name", status_code=204)
async def set_published_name(
    slug: str,
    member_id: uuid.UUID,
    data: PublishedNameUpdate,
    session: SessionDep,
    current: CurrentMemberDep,
) -> None:
    """The name the report form lists the person by, so a whistleblower can exclude them from a
    report that concerns them; empty to list them not. The person or a key holder sets it."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await team.set_published_name(session, organisation, current, member_id, data.published_name)


@router.post("/invitations/accept", status_code=201)
async def accept_invitation(
    data: InvitationAccept, request: Request, session: SessionDep, settings: SettingsDep
) -> None:
    """Set the password of an invited person's new account."""
    rate_limit(request, "invitation", 20, 3600)
    await team.accept_invitation(session, settings, data.token, data.password)


@router.post("/auth/password", status_code=204)
async def change_password(
    data: PasswordChange, session: SessionDep, settings: SettingsDep, current: CurrentMemberDep
) -> None:
    """Change the password; the key pair stays, other sessions end."""
    await team.change_password(session, settings, current, data.current_password, data.new_password)


@router.post("/recovery", status_code=204)
async def recover(
    data: RecoveryRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> None:
    """Regain access with the organisation's recovery key and set a new password."""
    rate_limit(request, "recovery", 10, 3600)
    await team.recover(
        session, settings, data.organisation, data.email, data.recovery_key, data.new_password
    )
