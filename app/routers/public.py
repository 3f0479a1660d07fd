"""Public pages: health, registration, address verification and the organisation's form."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from sqlalchemy import text

from app.db import SessionDep
from app.deps import SettingsDep
from app.errors import AppError
from app.i18n import N_
from app.routers.uploads import rate_limit
from app.schemas.organisation import OrganisationCreate
from app.services import registration
from app.templating import render

router = APIRouter(include_in_schema=False)

FIELD_HELP = {
    "slug": N_("Use 3-40 lowercase letters, digits and hyphens; some words are reserved."),
    "name": N_("Enter the organisation's name (at most 200 characters)."),
    "ico": N_("Enter a valid IČO: 8 digits with a correct check digit."),
    "address": N_("Enter the registered address (at most 500 characters)."),
    "email": N_("Enter a valid e-mail address."),
    "password": N_("The password needs 10 to 256 characters."),
}
REGISTER_FIELDS = ("slug", "name", "ico", "address", "email")


@router.get("/healthz", include_in_schema=True, tags=["service"])
async def healthz(session: SessionDep) -> JSONResponse:
    """200 when the service and its database answer."""
    await session.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok"})


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return render(request, "public/home.html")


@router.get("/register", response_class=HTMLResponse)
async def registration_form(request: Request) -> HTMLResponse:
    return render(request, "public/register.html", {"values": {}, "errors": {}})


@router.post("/register", response_class=HTMLResponse)
async def register_organisation(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    slug: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    ico: Annotated[str, Form(max_length=100)] = "",
    address: Annotated[str, Form(max_length=2000)] = "",
    email: Annotated[str, Form(max_length=500)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    password_again: Annotated[str, Form(max_length=1000)] = "",
) -> HTMLResponse:
    values = {"slug": slug, "name": name, "ico": ico, "address": address, "email": email}
    errors: dict[str, str] = {}
    data = None
    try:
        data = OrganisationCreate(**values, password=password)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0])
            errors[field] = FIELD_HELP.get(field, N_("Check this field."))
    if password != password_again:
        errors["password_again"] = N_("The passwords do not match.")
    if data is not None and not errors:
        rate_limit(request, "registration", settings.registrations_per_hour, 3600)
        try:
            registered = await registration.register_organisation(session, settings, data)
        except AppError as exc:
            errors[exc.field or "slug"] = exc.message
        else:
            return render(
                request,
                "public/registered.html",
                {
                    "organisation": registered.organisation,
                    "recovery_key": registered.recovery_key,
                    "form_url": f"{settings.public_url.rstrip('/')}/{registered.organisation.slug}",
                },
                status_code=201,
            )
    return render(
        request, "public/register.html", {"values": values, "errors": errors}, status_code=422
    )


@router.get("/verify/{token}", response_class=HTMLResponse)
async def verify_email(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    organisation = await registration.verify_email(session, settings, token)
    return render(request, "public/verified.html", {"organisation": organisation})
