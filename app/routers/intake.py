"""The whistleblower's pages: the report form, the receipt, and the tracking pages.

They work without JavaScript and without cookies. The tracking code travels only in form bodies:
a tracking link carries it in the address's fragment (`/track#CODE`), which browsers never send,
and static/track.js moves it into the form. An organisation's form, tracking pages and the cases
opened there may be framed by the origins the organisation allowed for its form.
"""

import hmac
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.bodylimit import takes_files
from app.config import Settings
from app.db import SessionDep
from app.deps import SettingsDep
from app.errors import AppError, Conflict, InvalidInput, RateLimited, TooLarge
from app.headers import content_security_policy
from app.i18n import N_
from app.models import Organisation
from app.routers.uploads import rate_limit, read_form, read_submission
from app.schemas.report import CATEGORIES, RELATIONSHIPS, MessageCreate, ReportSubmit
from app.services import attachments, deadlines, exclusion, keys, registration, reports
from app.services.ratelimit import RateLimiter
from app.templating import render, request_language, url_in_language
from app.vocabulary import OUTCOME_LABELS, STATUS_LABELS

router = APIRouter(include_in_schema=False)
FORM_FIELDS = {"started", "website"}
EXTERNAL_CHANNEL = "https://oznamovatel.justice.cz/"


def _form_token(settings: Settings, issued: int) -> str:
    signature = keys.keyed_hash(settings, "form-timer", str(issued).encode()).hex()[:32]
    return f"{issued}.{signature}"


def _filled_too_fast(settings: Settings, token: str) -> bool:
    """True for a missing, forged or too quick form timer (bots post at once)."""
    issued_text, _, signature = token.partition(".")
    if not issued_text.isdigit():
        return True
    expected = _form_token(settings, int(issued_text)).partition(".")[2]
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return time.time() - int(issued_text) < settings.form_min_fill_seconds


def _form_page(
    request: Request,
    settings: Settings,
    organisation: Organisation,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    files_dropped: bool = False,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    persons: list[exclusion.Holder] | None = None,
    excluded: Collection[str] = (),
) -> HTMLResponse:
    return render(
        request,
        "public/form.html",
        {
            "organisation": organisation,
            "persons": persons or [],
            "excluded": set(excluded),
            "values": values or {"anonymous": "true"},
            "errors": errors or {},
            "files_dropped": files_dropped,
            "categories": CATEGORIES,
            "relationships": RELATIONSHIPS,
            "started": _form_token(settings, int(time.time())),
            "max_files": settings.max_files,
            "max_file_mb": settings.max_file_bytes // (1024 * 1024),
            "external_channel": EXTERNAL_CHANNEL,
        },
        status_code=status_code,
        headers={**_frame_headers(organisation), **(headers or {})},
    )


def _frame_headers(organisation: Organisation | None) -> dict[str, str]:
    """An organisation's pages may be framed exactly by the origins it allowed for its form."""
    origins = organisation.allowed_embed_origins if organisation else ()
    return {"Content-Security-Policy": content_security_policy(origins)}


def _tracking_headers(organisation: Organisation | None) -> dict[str, str]:
    # Set here because /{slug}/track is not under /track, where the middleware sets it.
    return {**_frame_headers(organisation), "Referrer-Policy": "no-referrer"}


async def _receiving_organisation(
    request: Request, session: SessionDep, slug: str
) -> tuple[Organisation, HTMLResponse | None]:
    """The form's organisation, and the page to show instead when it cannot receive reports."""
    organisation = await registration.find_organisation(session, slug)
    try:
        registration.ensure_can_receive(organisation)
    except AppError as exc:
        page = render(
            request,
            "error.html",
            {"status": exc.status_code, "message": exc.message},
            status_code=exc.status_code,
            headers=_frame_headers(organisation),
        )
        return organisation, page
    return organisation, None


def _tracking_page(
    request: Request,
    organisation: Organisation | None,
    *,
    code: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The page where the whistleblower enters the code (it may arrive in the link's fragment)."""
    return render(
        request,
        "public/track.html",
        {"organisation": organisation, "code": code, "error": error},
        status_code=status_code,
        headers=_tracking_headers(organisation),
    )


async def _tracking_organisation(session: SessionDep, slug: str) -> Organisation | None:
    """The organisation whose tracking page was used, for its framing rules; None if unknown."""
    if not slug:
        return None
    try:
        return await registration.find_organisation(session, slug)
    except AppError:
        return None


@router.get("/track", response_class=HTMLResponse)
async def tracking_form(request: Request) -> HTMLResponse:
    return _tracking_page(request, None)


async def _case_page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    code: str,
    organisation: Organisation | None = None,
) -> HTMLResponse:
    rate_limit(request, "lookup", settings.lookups_per_10_minutes, 600)
    try:
        opened = await reports.open_by_code(session, settings, code)
    except AppError as exc:
        return _tracking_page(request, organisation, error=exc.message, status_code=404)
    return await _render_case(request, session, settings, opened, code)


async def _render_case(
    request: Request,
    session: SessionDep,
    settings: Settings,
    opened: reports.OpenedReport,
    code: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    view = await reports.whistleblower_view(session, opened)
    return render(
        request,
        "public/case.html",
        {
            "view": view,
            "case": opened.report,
            "code": code,
            "received_on": deadlines.local_date(view.received_at),
            "decided_on": deadlines.local_date(opened.report.decided_at)
            if opened.report.decided_at
            else None,
            "status_labels": STATUS_LABELS,
            "outcome_labels": OUTCOME_LABELS,
            "categories": CATEGORIES,
            "relationships": RELATIONSHIPS,
            "notice": notice,
            "error": error,
            "max_files": settings.max_files,
        },
        status_code=status_code,
        headers=_tracking_headers(opened.organisation),
    )


@router.post("/track", response_class=HTMLResponse)
async def open_case(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=100)] = "",
    organisation: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    framing = await _tracking_organisation(session, organisation)
    return await _case_page(request, session, settings, code, framing)


@router.get("/track/{code}", response_class=HTMLResponse)
async def open_case_by_link(code: str, request: Request) -> HTMLResponse:
    """An old tracking link: the code goes into the form, out of the address, and is not looked
    up here, so a link preview opens nothing and the case never answers a GET."""
    return _tracking_page(request, None, code=code[:100])


@router.post("/track/messages", response_class=HTMLResponse)
@takes_files
async def write_message(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    error: str | None = None
    try:
        data, files = await read_submission(request, settings, MessageCreate, form_fields={"code"})
    except RequestValidationError:
        data, files, error = None, [], N_("Write a message (at most 20,000 characters).")
    code = str((await request.form()).get("code", ""))[:100]
    rate_limit(request, "lookup", settings.lookups_per_10_minutes, 600)
    try:
        opened = await reports.open_by_code(session, settings, code)
    except AppError as exc:
        return _tracking_page(request, None, error=exc.message, status_code=404)
    if data is None:
        return await _render_case(
            request, session, settings, opened, code, error=error, status_code=422
        )
    try:
        # A page answers the error instead of raising it: the savepoint drops a message
        # whose file was refused, so nothing half-sent is committed.
        async with session.begin_nested():
            await reports.add_whistleblower_message(session, settings, opened, data.body, files)
    except AppError as exc:
        return await _render_case(
            request, session, settings, opened, code, error=exc.message,
            status_code=exc.status_code,
        )  # fmt: skip
    return await _render_case(request, session, settings, opened, code, notice=N_("Message sent."))


async def _act_on_case(
    request: Request,
    session: SessionDep,
    settings: Settings,
    code: str,
    act: Callable[[reports.OpenedReport], Awaitable[None]],
    notice: str,
) -> HTMLResponse:
    """A whistleblower's step on the tracking page: the code opens the case, then `act`."""
    rate_limit(request, "lookup", settings.lookups_per_10_minutes, 600)
    try:
        opened = await reports.open_by_code(session, settings, code)
    except AppError as exc:
        return _tracking_page(request, None, error=exc.message, status_code=404)
    try:
        async with session.begin_nested():
            await act(opened)
    except AppError as exc:
        return await _render_case(
            request, session, settings, opened, code, error=exc.message,
            status_code=exc.status_code,
        )  # fmt: skip
    return await _render_case(request, session, settings, opened, code, notice=notice)


@router.post("/track/meeting", response_class=HTMLResponse)
async def request_meeting(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    async def act(opened: reports.OpenedReport) -> None:
        await reports.request_meeting(session, settings, opened)

    notice = N_(
        "You asked for a personal meeting: the designated person offers one within 14 days."
    )
    return await _act_on_case(request, session, settings, code, act, notice)


@router.post("/track/record-comments", response_class=HTMLResponse)
async def comment_on_record(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=100)] = "",
    body: Annotated[str, Form(max_length=40000)] = "",
) -> HTMLResponse:
    async def act(opened: reports.OpenedReport) -> None:
        try:
            data = MessageCreate(body=body)
        except ValidationError:
            raise InvalidInput(
                N_("Write a message (at most 20,000 characters)."), field="body"
            ) from None
        await reports.comment_on_record(session, settings, opened, data.body)

    notice = N_("Your comments on the record were stored.")
    return await _act_on_case(request, session, settings, code, act, notice)


@router.post("/track/files/{attachment_id}")
async def download_file(
    attachment_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    rate_limit(request, "lookup", settings.lookups_per_10_minutes, 600)
    opened = await reports.open_by_code(session, settings, code)
    attachment, read = await reports.report_attachment(
        session, opened.report, opened.report_key, attachment_id
    )
    chunks = attachments.stream_file(request.app.state.sessionmaker, attachment, opened.report_key)
    return attachments.download_response(chunks, read.name, read.content_type, read.size)


@router.get("/{slug}", response_class=HTMLResponse)
async def report_form(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    organisation, unavailable = await _receiving_organisation(request, session, slug)
    if unavailable is not None:
        return unavailable
    persons = await exclusion.listed_persons(session, settings, organisation)
    return _form_page(request, settings, organisation, persons=persons)


@router.get("/{slug}/track", response_class=HTMLResponse)
async def organisation_tracking_form(
    slug: str, request: Request, session: SessionDep
) -> HTMLResponse:
    """The tracking page reached from an organisation's form: framable where the form is."""
    organisation = await registration.find_organisation(session, slug)
    return _tracking_page(request, organisation)


def _in_language(request: Request, link: str) -> str:
    """A tracking link that opens the page in the language it was shown in."""
    page, _, code = link.partition("#")
    return f"{url_in_language(page, request_language(request))}#{code}"


def _refund_submission(request: Request) -> None:
    """A refused form is no report: only accepted reports count against the hourly limit."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.refund("submit", request.client.host if request.client else "unknown")


@router.post("/{slug}", response_class=HTMLResponse)
@takes_files
async def submit_report(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    # The body first: no database connection is held while a slow client uploads.
    too_large: TooLarge | None = None
    try:
        form = await read_form(request, settings)
    except TooLarge as exc:
        too_large = exc
    organisation, unavailable = await _receiving_organisation(request, session, slug)
    if unavailable is not None:
        return unavailable
    persons = await exclusion.listed_persons(session, settings, organisation)
    if too_large is not None:
        return _form_page(
            request, settings, organisation, errors={"form": too_large.message},
            files_dropped=True, status_code=413, persons=persons,
        )  # fmt: skip
    values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    files_dropped = any(isinstance(v, UploadFile) and v.filename for _, v in form.multi_items())
    excluded = [v for v in form.getlist("exclude") if isinstance(v, str)]

    def refused(errors: dict[str, str], status_code: int = 422, **kwargs: Any) -> HTMLResponse:
        return _form_page(
            request, settings, organisation, values=values, errors=errors,
            files_dropped=files_dropped, status_code=status_code, persons=persons,
            excluded=excluded, **kwargs,
        )  # fmt: skip

    try:
        rate_limit(request, "submit", settings.submissions_per_hour, 3600)
    except RateLimited as exc:
        limited = N_("Too many reports were sent from your connection in the last hour, so this "
                     "one was not sent. Send it again in a while (at most an hour).")  # fmt: skip
        return refused({"form": limited}, 429, headers={"Retry-After": str(exc.retry_after)})
    errors: dict[str, str] = {}
    if values.get("website") or _filled_too_fast(settings, values.get("started", "")):
        # A bot: the honeypot field was filled, or the form came back faster than anyone types.
        # The fields are still checked, so a person caught here learns what else to correct.
        errors["form"] = N_("The form could not be sent. Wait a moment and send it again.")
    try:
        data, files = await read_submission(
            request, settings, ReportSubmit, form_fields=FORM_FIELDS
        )
        reports.check_acceptance(organisation, data)
    except RequestValidationError as exc:
        errors |= {str(e["loc"][0] if e["loc"][0] == "exclude" else e["loc"][-1]):
                   FIELD_HELP.get(str(e["loc"][-1]), N_("Check this field."))
                   for e in exc.errors() if e.get("loc")}  # fmt: skip
    except InvalidInput as exc:
        errors[exc.field or "form"] = exc.message
    if errors:
        _refund_submission(request)
        return refused(errors)
    try:
        async with session.begin_nested():  # a refused file leaves no half-stored report
            submitted = await reports.submit_report(
                session, settings, organisation, data.content(), files,
                exclude=data.exclude, name_excluded=data.name_excluded,
            )  # fmt: skip
    except InvalidInput as exc:
        _refund_submission(request)
        return refused({exc.field or "form": exc.message})
    except Conflict as exc:
        if exc.code not in {"nobody_left", "exclusion_unavailable"}:
            raise
        # Nothing was stored: the form says so, with the external channel, and keeps the text.
        _refund_submission(request)
        return refused({"form": exc.message, "exclude": exc.message}, exc.status_code)
    return render(
        request,
        "public/receipt.html",
        {
            "organisation": organisation,
            "tracking_code": submitted.tracking_code,
            "tracking_url": _in_language(
                request, reports.tracking_url(settings, submitted.tracking_code, organisation.slug)
            ),
            "received_on": deadlines.local_date(submitted.report.received_at),
            "report": submitted.report,
            "email_given": bool(data.email),
        },
        status_code=201,
        headers=_frame_headers(organisation),
    )


FIELD_HELP = {
    "description": N_("Describe what happened (at most 20,000 characters)."),
    "email": N_("Enter a valid e-mail address, or leave the field empty."),
    "birth_date": N_("Enter the date of birth as YYYY-MM-DD."),
    "name": N_("At most 200 characters."),
    "phone": N_("At most 50 characters."),
}
