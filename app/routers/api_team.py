"""JSON API: the organisation's designated persons, invitations, password and recovery."""

import uuid

from fastapi import APIRouter, Request

from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep
from app.routers.uploads import rate_limit
from app.schemas.team import (
    AppointmentUpdate,
    InvitationAccept,
    InviteRequest,
    MemberList,
    MemberRead,
    PasswordChange,
    RecoveryRequest,
)
from app.services import organisations, team

router = APIRouter(prefix="/api/v1", tags=["team"])


@router.get("/organisations/{slug}/members")
async def list_members(slug: str, session: SessionDep, current: CurrentMemberDep) -> MemberList:
    """The designated persons, whether they have access yet, and their appointment records."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    rows = await team.list_members(session, organisation)
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


@router.delete("/organisations/{slug}/members/{member_id}", status_code=204)
async def remove_member(
    slug: str, member_id: uuid.UUID, session: SessionDep, current: CurrentMemberDep
) -> None:
    """Remove a designated person; their grant goes with them."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await team.remove_member(session, organisation, current, member_id)


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
