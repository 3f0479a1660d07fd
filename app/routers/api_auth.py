"""JSON API: designated-person login, logout, profile and two-factor authentication."""

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep
from app.models import Member, MemberSession
from app.routers.cookies import clear_session_cookie, set_session_cookie
from app.routers.uploads import failed_logins_limited
from app.schemas.auth import LoginRequest, MemberRead, OrganisationBrief, TotpCode, TotpSetupRead
from app.services import auth

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


async def _member_read(
    session: AsyncSession, member: Member, member_session: MemberSession, fingerprint: str
) -> MemberRead:
    organisations = await auth.member_organisations(session, member.id)
    return MemberRead(
        id=member.id,
        email=member.email,
        totp_enabled=member.totp_enabled_at is not None,
        session_expires_at=member_session.expires_at,
        key_fingerprint=fingerprint,
        organisations=[
            OrganisationBrief(
                id=o.id, slug=o.slug, name=o.name, email_verified=o.can_receive_reports
            )
            for o in organisations
        ],
    )


@router.post("/login")
async def login(
    data: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> MemberRead:
    """Log in; the answer sets the session cookie."""
    with failed_logins_limited(request, settings):
        logged_in = await auth.login(session, settings, data.email, data.password, data.totp)
    set_session_cookie(response, settings, logged_in.cookie_value)
    return await _member_read(
        session, logged_in.member, logged_in.session, logged_in.key_fingerprint
    )


@router.post("/logout", status_code=204)
async def logout(
    current: CurrentMemberDep, response: Response, session: SessionDep, settings: SettingsDep
) -> None:
    """End the session."""
    await auth.logout(session, current)
    clear_session_cookie(response, settings)


@router.get("/me")
async def read_me(current: CurrentMemberDep, session: SessionDep) -> MemberRead:
    """The logged-in designated person and the organisations they serve."""
    return await _member_read(session, current.member, current.session, current.key_fingerprint)


@router.post("/totp", status_code=201)
async def start_totp(
    current: CurrentMemberDep, session: SessionDep, settings: SettingsDep
) -> TotpSetupRead:
    """Begin switching on TOTP: the secret to enter into an authenticator app."""
    setup = await auth.start_totp(session, settings, current.member)
    return TotpSetupRead(secret=setup.secret, otpauth_uri=setup.uri)


@router.post("/totp/confirm", status_code=204)
async def confirm_totp(
    data: TotpCode, current: CurrentMemberDep, session: SessionDep, settings: SettingsDep
) -> None:
    """Switch TOTP on with a code from the authenticator."""
    await auth.confirm_totp(session, settings, current.member, data.code)


@router.post("/totp/disable", status_code=204)
async def disable_totp(
    data: TotpCode, current: CurrentMemberDep, session: SessionDep, settings: SettingsDep
) -> None:
    """Switch TOTP off with a current code."""
    await auth.disable_totp(session, settings, current.member, data.code)
