"""Organisation settings: the form's rules, embedding origins and the information page."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.config import Settings
from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep, require_csrf
from app.i18n import N_
from app.models import Organisation
from app.schemas.settings import OrganisationSettings, normalise_origin
from app.services import organisations
from app.templating import render, request_language, url_in_language

router = APIRouter(include_in_schema=False)
CsrfChecked = Depends(require_csrf)
EXTERNAL_CHANNEL = "https://oznamovatel.justice.cz/"
# Generous limits on the raw form; the schema gives the precise, explained ones.
RAW_TEXT = 20000

FIELD_HELP = {
    "embed_origins": N_(
        "Enter at most 20 website addresses, one per line, such as https://www.example.cz: "
        "https:// with a domain name or IPv4 address and an optional port, without a path. "
        "http:// is allowed only for localhost."
    ),
    "info_how_to_report": N_("Use at most 5,000 characters, without control characters."),
    "info_designated_persons": N_("Use at most 5,000 characters, without control characters."),
}


def _settings_url(slug: str) -> str:
    return f"/organisations/{slug}/settings"


def _invalid_origins(lines: list[str]) -> list[str]:
    invalid = []
    for line in lines:
        try:
            normalise_origin(line)
        except ValueError:
            invalid.append(line)
    return invalid


def _settings_page(
    request: Request,
    settings: Settings,
    organisation: Organisation,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    invalid_origins: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    if values is None:
        values = {
            "accepts_anonymous": organisation.accepts_anonymous,
            "only_own_people": organisation.only_own_people,
            "embed_origins": "\n".join(organisation.allowed_embed_origins),
            "info_how_to_report": organisation.info_how_to_report,
            "info_designated_persons": organisation.info_designated_persons,
        }
    return render(
        request,
        "admin/settings.html",
        {
            "organisation": organisation,
            "values": values,
            "errors": errors or {},
            "invalid_origins": invalid_origins or [],
            "saved": request.query_params.get("saved") == "1",
            "embed_snippet": organisations.embed_snippet(settings, organisation),
            "form_url": organisations.form_url(settings, organisation),
            "info_url": organisations.info_url(settings, organisation),
        },
        status_code=status_code,
    )


@router.get("/organisations/{slug}/settings", response_class=HTMLResponse)
async def settings_form(
    slug: str,
    request: Request,
    current: CurrentMemberDep,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    return _settings_page(request, settings, organisation)


@router.post(
    "/organisations/{slug}/settings", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def update_settings(
    slug: str,
    request: Request,
    current: CurrentMemberDep,
    session: SessionDep,
    settings: SettingsDep,
    accepts_anonymous: Annotated[str, Form(max_length=10)] = "",
    only_own_people: Annotated[str, Form(max_length=10)] = "",
    embed_origins: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    info_how_to_report: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    info_designated_persons: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    # An unchecked checkbox is simply absent from the form.
    values: dict[str, Any] = {
        "accepts_anonymous": bool(accepts_anonymous),
        "only_own_people": bool(only_own_people),
        "embed_origins": embed_origins,
        "info_how_to_report": info_how_to_report,
        "info_designated_persons": info_designated_persons,
    }
    lines = [line.strip() for line in embed_origins.splitlines() if line.strip()]
    try:
        data = OrganisationSettings.model_validate({**values, "embed_origins": lines})
    except ValidationError as exc:
        fields = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        errors = {field: FIELD_HELP.get(field, N_("Check this field.")) for field in fields}
        return _settings_page(
            request,
            settings,
            organisation,
            values=values,
            errors=errors,
            invalid_origins=_invalid_origins(lines),
            status_code=422,
        )
    await organisations.update_settings(session, organisation, data)
    target = url_in_language(_settings_url(organisation.slug), request_language(request), saved="1")
    return RedirectResponse(target, status_code=303)


@router.get("/{slug}/info", response_class=HTMLResponse)
async def information_page(slug: str, request: Request, session: SessionDep) -> HTMLResponse:
    organisation = await organisations.get_public_organisation(session, slug)
    return render(
        request,
        "public/info.html",
        {"organisation": organisation, "external_channel": EXTERNAL_CHANNEL},
    )
