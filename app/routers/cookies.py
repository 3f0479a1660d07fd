"""The session cookie, set and cleared the same way by the JSON API and the pages."""

from fastapi import Response

from app.config import Settings
from app.deps import session_cookie_name


def set_session_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        value,
        max_age=settings.session_hours * 3600,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
