"""Request dependencies: settings, the current designated person, the CSRF check."""

from typing import Annotated

from fastapi import Depends, Form, Header, Request

from app import crypto
from app.config import Settings
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized
from app.i18n import N_
from app.services import auth, operator
from app.services.auth import CurrentMember
from app.services.operator import CurrentOperator


def session_cookie_name(settings: Settings) -> str:
    # The __Host- prefix makes browsers refuse the cookie unless it is Secure, host-only, Path=/.
    return "__Host-pistalka" if settings.secure_cookies else "pistalka_session"


def operator_cookie_name(settings: Settings) -> str:
    return "__Host-pistalka-operator" if settings.secure_cookies else "pistalka_operator"


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def optional_member(
    request: Request, session: SessionDep, settings: SettingsDep
) -> CurrentMember | None:
    current = await auth.resolve_session(
        session, settings, request.cookies.get(session_cookie_name(settings))
    )
    if current is not None:
        request.state.csrf_token = current.csrf_token
    return current


OptionalMemberDep = Annotated[CurrentMember | None, Depends(optional_member)]


async def require_member(
    request: Request, current: OptionalMemberDep, settings: SettingsDep
) -> CurrentMember:
    if current is None:
        if request.cookies.get(operator_cookie_name(settings)):
            # The operator has no access to reports at all, whatever the path.
            raise Forbidden(
                N_("The operator has no access to organisations' reports."), code="operator"
            )
        raise Unauthorized(N_("Log in first."), code="not_logged_in")
    return current


CurrentMemberDep = Annotated[CurrentMember, Depends(require_member)]


async def require_csrf(current: CurrentMemberDep, csrf: Annotated[str, Form()] = "") -> None:
    """HTML forms of a logged-in member carry a token bound to the session."""
    if not auth.verify_csrf(current, csrf):
        raise Forbidden(N_("The form has expired. Reload the page and try again."), code="csrf")


async def access_reason(
    value: Annotated[str | None, Header(alias="X-Access-Reason", max_length=500)] = None,
) -> str | None:
    """The reason of access header; sent as raw UTF-8 (as curl does), it arrives as Latin-1."""
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


AccessReasonDep = Annotated[str | None, Depends(access_reason)]


async def optional_operator(
    request: Request, session: SessionDep, settings: SettingsDep
) -> CurrentOperator | None:
    current = await operator.resolve_session(
        session, settings, request.cookies.get(operator_cookie_name(settings))
    )
    if current is not None:
        request.state.csrf_token = current.csrf_token
    return current


OptionalOperatorDep = Annotated[CurrentOperator | None, Depends(optional_operator)]


async def require_operator(current: OptionalOperatorDep) -> CurrentOperator:
    if current is None:
        raise Unauthorized(N_("Log in first."), code="operator_not_logged_in")
    return current


CurrentOperatorDep = Annotated[CurrentOperator, Depends(require_operator)]


async def require_operator_csrf(
    current: CurrentOperatorDep, csrf: Annotated[str, Form()] = ""
) -> None:
    if not crypto.verify_equal(current.csrf_token.encode(), csrf.encode()):
        raise Forbidden(N_("The form has expired. Reload the page and try again."), code="csrf")
