"""The designated person's case pages: the case list, one case and the forms of its actions.

The HTML twin of api_cases.py: every page and form calls the same service functions.
"""

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from app.bodylimit import takes_files
from app.config import Settings
from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep, get_app_settings, require_csrf
from app.errors import AppError, InvalidInput
from app.i18n import N_
from app.models.base import utcnow
from app.routers.uploads import read_submission
from app.schemas.case import (
    AccessReason,
    AcknowledgeRequest,
    BodyRequest,
    DecisionRequest,
    ExtendRequest,
    IdentityUpdate,
    MeasureCreate,
    MeetingPlan,
    RecordedReportCreate,
    SummaryRequest,
    Triage,
)
from app.schemas.report import CATEGORIES, RELATIONSHIPS
from app.services import attachments, cases, deadlines, exclusion, reports
from app.services.auth import CurrentMember
from app.templating import redirect, render, request_language, url_in_language
from app.vocabulary import (
    CASE_ACTION_LABELS,
    CHANNEL_LABELS,
    CONSENT_LABELS,
    DETAIL_LABELS,
    DETAIL_SHOWN,
    MEASURE_KIND_LABELS,
    OPEN_STATUSES,
    OUTCOME_LABELS,
    RECORDED_CHANNELS,
    STATUS_LABELS,
    TRIAGE_LABELS,
    WAIVE_REASON_LABELS,
    Completeness,
    Priority,
    RetaliationRisk,
)

router = APIRouter(include_in_schema=False)
CsrfChecked = Depends(require_csrf)
Model = TypeVar("Model", bound=BaseModel)
# Generous limits on the raw form; the schemas give the precise ones.
RAW_TEXT = 20000

DONE = {
    "acknowledged": N_("Receipt acknowledged: the message was sent to the whistleblower."),
    "waived": N_("The acknowledgement was waived and its reason recorded."),
    "extended": N_("The deadline was extended and the whistleblower was told why."),
    "decided": N_("The outcome was recorded and sent to the whistleblower."),
    "measures": N_("The measures were recorded."),
    "message": N_("Message sent to the whistleblower."),
    "note": N_("Internal note added."),
    "closed": N_("The case is closed."),
    "held": N_("The case is on legal hold: it is kept past the retention period until released."),
    "hold_released": N_("The legal hold was released."),
    "record_comments": N_("The whistleblower's comments on the record were stored."),
    "identity": N_("The whistleblower's identity was recorded."),
    "triage": N_("The triage was recorded."),
    "summary": N_("The summary for the register was saved."),
    "meeting": N_("The meeting was planned and the whistleblower was told."),
    "shared": N_("The colleague can now read the case."),
}
INVALID = {
    AccessReason: N_("Write the reason for opening the case (3 to 500 characters)."),
    AcknowledgeRequest: N_("Write the acknowledgement (at most 20,000 characters)."),
    ExtendRequest: N_(
        "Write the reason for the extension (at most 20,000 characters) and its length"
        " (1 to 30 days)."
    ),
    DecisionRequest: N_("Choose the outcome; the message may have at most 20,000 characters."),
    BodyRequest: N_("Write the text (at most 20,000 characters)."),
    IdentityUpdate: N_(
        "Write the name (at most 200 characters); the date of birth as YYYY-MM-DD and the "
        "address (at most 500 characters) if known."
    ),
    MeetingPlan: N_("Choose the date and time of the meeting and write the place."),
    Triage: N_("Choose the values from the lists; the plan may have at most 20,000 characters."),
    MeasureCreate: N_(
        "Choose whose measures they are and describe them (at most 20,000 characters)."
    ),
    SummaryRequest: N_("Write the summary (3 to 2,000 characters)."),
}
RECORD_FIELD_HELP = {
    "channel": N_("Choose how the report was received."),
    "received_on": N_("Enter the date of receipt as YYYY-MM-DD."),
    "recording_consent": N_("Choose whether the whistleblower consented to a recording."),
    "description": N_("Write the record or the summary of the report (at most 20,000 characters)."),
    "email": N_("Enter a valid e-mail address, or leave the field empty."),
    "birth_date": N_("Enter the date of birth as YYYY-MM-DD."),
    "name": N_("At most 200 characters."),
    "phone": N_("At most 50 characters."),
}


def _validated(model: type[Model], values: dict[str, Any]) -> Model:
    """The form's values as the JSON twin's schema, or a message the page can show."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v not in ("", None)})
    except ValidationError:
        raise InvalidInput(INVALID[model]) from None


def _today() -> date:
    return deadlines.local_date(utcnow())


def _local_moment(value: datetime) -> str:
    """A moment in the organisation's time zone, as people there read it."""
    return value.astimezone(cases.PRAGUE).strftime("%d. %m. %Y %H:%M")


def _labels() -> dict[str, Any]:
    return {
        "statuses": STATUS_LABELS,
        "outcomes": OUTCOME_LABELS,
        "channels": CHANNEL_LABELS,
        "local_date": deadlines.local_date,
        "today": _today(),
    }


@router.get("/cases", response_class=HTMLResponse)
async def list_cases(
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    organisation: Annotated[str, Query(max_length=40)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    outcome: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    everything = await cases.accessible_organisations(session, current)
    chosen = await cases.accessible_organisations(session, current, organisation or None)
    found = await cases.list_cases(
        session,
        chosen,
        status=status or None,
        outcome=outcome or None,
        offset=(page - 1) * cases.PAGE_SIZE,
    )
    return render(
        request,
        "admin/cases.html",
        {
            "items": found.items,
            "total": found.total,
            "page": page,
            "pages": max(1, -(-found.total // cases.PAGE_SIZE)),
            "organisations": {
                access.organisation.slug: access.organisation for access in everything
            },
            "filters": {"organisation": organisation, "status": status, "outcome": outcome},
            **_labels(),
        },
    )


async def _case_page(
    request: Request,
    session: SessionDep,
    current: CurrentMember,
    case_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The case decrypted, or the question for the reason of access when none was given."""
    access, report = await cases.open_case(session, current, case_id)
    context: dict[str, Any] = {
        "organisation": access.organisation,
        "error": error,
        "notice": DONE.get(request.query_params.get("done", "")),
        **_labels(),
    }
    if not await cases.read_reason_given(session, current, report):
        summary = cases.summary(report, access.organisation, _today())
        return render(
            request,
            "admin/case.html",
            {**context, "case": None, "summary": summary},
            status_code=status_code,
        )
    case = await cases.read_case(session, access, current, report, None)
    received_on = deadlines.local_date(case.received_at)
    acknowledgement = cases.bilingual(
        "acknowledge",
        date=received_on.strftime("%d. %m. %Y"),
        due=case.assess_by.strftime("%d. %m. %Y"),
    )
    return render(
        request,
        "admin/case.html",
        {
            **context,
            "case": case,
            "summary": case,
            "received_on": received_on,
            "acknowledgement_text": acknowledgement,
            "decision_texts": {
                outcome: cases.bilingual(outcome, url=cases.EXTERNAL_CHANNEL)
                for outcome in OUTCOME_LABELS
            },
            "external_channel": cases.EXTERNAL_CHANNEL,
            "waive_reasons": WAIVE_REASON_LABELS,
            "categories": CATEGORIES,
            "relationships": RELATIONSHIPS,
            "max_extensions": deadlines.CZECH.max_extensions,
            "can_extend": case.extensions < deadlines.CZECH.max_extensions,
            "open_statuses": OPEN_STATUSES,
            "consent": CONSENT_LABELS,
            "measure_kinds": MEASURE_KIND_LABELS,
            "triage": {
                "priority": list(Priority),
                "completeness": list(Completeness),
                "retaliation_risk": list(RetaliationRisk),
                "labels": TRIAGE_LABELS,
            },
            "events": await cases.timeline(session, access, report),
            "shareable": await exclusion.shareable(
                session, await get_app_settings(request), access.organisation, report
            )
            if case.exclusion is not None
            else [],
            "case_actions": CASE_ACTION_LABELS,
            "detail_shown": DETAIL_SHOWN,
            "detail_labels": DETAIL_LABELS,
            "local_moment": _local_moment,
        },
        status_code=status_code,
    )


def _record_page(
    request: Request,
    settings: Settings,
    access: cases.CaseAccess,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    defaults = {"channel": "telephone", "received_on": _today().isoformat(), "anonymous": "true"}
    return render(
        request,
        "admin/record.html",
        {
            "organisation": access.organisation,
            "created": None,
            "values": values or defaults,
            "errors": errors or {},
            "channels": CHANNEL_LABELS,
            "recorded_channels": RECORDED_CHANNELS,
            "consent": CONSENT_LABELS,
            "categories": CATEGORIES,
            "relationships": RELATIONSHIPS,
            "max_files": settings.max_files,
            "max_file_mb": settings.max_file_bytes // (1024 * 1024),
            "today": _today(),
        },
        status_code=status_code,
    )


@router.get("/cases/new", response_class=HTMLResponse)
async def record_report_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    organisation: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    [access] = await cases.accessible_organisations(session, current, organisation)
    return _record_page(request, settings, access)


@router.post("/cases/new", response_class=HTMLResponse)
@takes_files
async def record_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    organisation: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    [access] = await cases.accessible_organisations(session, current, organisation)
    errors: dict[str, str] = {}
    # As with a message: the form is read with the upload limits, then its CSRF token checked.
    try:
        data, files = await read_submission(
            request, settings, RecordedReportCreate, form_fields={"csrf"}
        )
    except RequestValidationError as exc:
        data, files = None, []
        errors = {
            str(e["loc"][-1]): RECORD_FIELD_HELP.get(str(e["loc"][-1]), N_("Check this field."))
            for e in exc.errors()
            if e.get("loc")
        }
    form = await request.form()
    await require_csrf(current, str(form.get("csrf", "")))
    values = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrf"}
    status_code = 422
    if data is not None:
        try:
            async with _step(session):  # a refused file leaves no half-stored case
                submitted = await cases.record_report(session, settings, access, data, files)
        except AppError as exc:
            errors = {exc.field or "form": exc.message}
            status_code = exc.status_code
        else:
            return _recorded_page(request, settings, access, submitted)
    return _record_page(
        request, settings, access, values=values, errors=errors, status_code=status_code
    )


def _recorded_page(
    request: Request,
    settings: Settings,
    access: cases.CaseAccess,
    submitted: reports.Submitted,
) -> HTMLResponse:
    """The case's reference and the tracking code to hand over: shown this once."""
    return render(
        request,
        "admin/record.html",
        {
            "organisation": access.organisation,
            "created": submitted.report,
            "tracking_code": submitted.tracking_code,
            "tracking_url": reports.tracking_url(settings, submitted.tracking_code),
            "received_on": deadlines.local_date(submitted.report.received_at),
        },
        status_code=201,
        # The code is not stored anywhere: no copy of this page either.
        headers={"Cache-Control": "no-store"},
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def read_case(
    case_id: str, request: Request, session: SessionDep, current: CurrentMemberDep
) -> Response:
    return await _case_page(request, session, current, case_id)


def _back_to_case(request: Request, case_id: str, done: str) -> RedirectResponse:
    target = url_in_language(f"/cases/{case_id}", request_language(request), done=done)
    return RedirectResponse(target, status_code=303)


@asynccontextmanager
async def _step(session: SessionDep) -> AsyncIterator[None]:
    # A failed step is shown on the case page instead of failing the request, so the request's
    # transaction would commit: a savepoint undoes what the step wrote before it failed (a
    # message whose file was refused, say).
    async with session.begin_nested():
        yield


async def _act(
    request: Request,
    session: SessionDep,
    current: CurrentMember,
    case_id: str,
    action: Awaitable[None],
    done: str,
) -> Response:
    """Run one action on the case: back to the case with a notice, or the page with the error."""
    try:
        async with _step(session):
            await action
    except AppError as exc:
        return await _case_page(
            request, session, current, case_id, error=exc.message, status_code=exc.status_code
        )
    return _back_to_case(request, case_id, done)


@router.post("/cases/{case_id}/open", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def open_case(
    case_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    reason: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)
    try:
        data = _validated(AccessReason, {"reason": reason})
        await cases.read_case(session, access, current, report, data.reason)
    except AppError as exc:
        return await _case_page(
            request, session, current, case_id, error=exc.message, status_code=exc.status_code
        )
    return redirect(request, f"/cases/{case_id}")


@router.post(
    "/cases/{case_id}/acknowledge", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def acknowledge(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    message: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
    waive: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(AcknowledgeRequest, {"message": message, "waive": waive})
        await cases.acknowledge(session, settings, access, report, data.message, data.waive)

    done = "waived" if waive else "acknowledged"
    return await _act(request, session, current, case_id, step(), done)


@router.post("/cases/{case_id}/extend", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def extend(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    reason: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
    days: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        fields = {"reason": reason} | ({"days": days} if days.strip() else {})
        data = _validated(ExtendRequest, fields)
        await cases.extend(session, settings, access, report, data.reason, data.days)

    return await _act(request, session, current, case_id, step(), "extended")


@router.post("/cases/{case_id}/decision", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def decide(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    outcome: Annotated[str, Form(max_length=20)] = "",
    message: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(DecisionRequest, {"outcome": outcome, "message": message})
        await cases.decide(session, settings, access, report, data.outcome, data.message)

    return await _act(request, session, current, case_id, step(), "decided")


@router.post("/cases/{case_id}/measures", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def record_measures(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    body: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    tell_whistleblower: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(
            MeasureCreate,
            {"body": body, "kind": kind, "tell_whistleblower": tell_whistleblower == "yes"},
        )
        await cases.record_measures(session, settings, access, report, data)

    return await _act(request, session, current, case_id, step(), "measures")


@router.post("/cases/{case_id}/messages", response_class=HTMLResponse)
@takes_files
async def write_message(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    access, report = await cases.open_case(session, current, case_id)
    # The form is read here, with the upload limits, before the CSRF token it carries is checked.
    try:
        data, files = await read_submission(request, settings, BodyRequest, form_fields={"csrf"})
    except RequestValidationError:
        data, files = None, []
    await require_csrf(current, str((await request.form()).get("csrf", "")))

    async def step() -> None:
        if data is None:
            raise InvalidInput(INVALID[BodyRequest])
        await cases.write_message(session, settings, access, report, data.body, files)

    return await _act(request, session, current, case_id, step(), "message")


@router.post("/cases/{case_id}/notes", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def add_note(
    case_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    body: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(BodyRequest, {"body": body})
        await cases.add_note(session, access, report, data.body)

    return await _act(request, session, current, case_id, step(), "note")


@router.post("/cases/{case_id}/recipients", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def share_case(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    member_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)
    step = cases.share_case(session, settings, access, report, member_id)
    return await _act(request, session, current, case_id, step, "shared")


@router.post(
    "/cases/{case_id}/record-comments", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def add_record_comments(
    case_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    body: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(BodyRequest, {"body": body})
        await cases.add_record_comments(session, access, report, data.body)

    return await _act(request, session, current, case_id, step(), "record_comments")


@router.post("/cases/{case_id}/triage", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def record_triage(
    case_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    priority: Annotated[str, Form(max_length=20)] = "normal",
    completeness: Annotated[str, Form(max_length=40)] = "complete",
    retaliation_risk: Annotated[str, Form(max_length=20)] = "low",
    protection_plan: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(
            Triage,
            {
                "priority": priority,
                "completeness": completeness,
                "retaliation_risk": retaliation_risk,
                "protection_plan": protection_plan,
            },
        )
        await cases.triage(session, access, report, data)

    return await _act(request, session, current, case_id, step(), "triage")


@router.post("/cases/{case_id}/summary", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def write_summary(
    case_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    summary: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(SummaryRequest, {"summary": summary})
        await cases.write_summary(session, access, report, data.summary)

    return await _act(request, session, current, case_id, step(), "summary")


@router.post("/cases/{case_id}/identity", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def record_identity(
    case_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    name: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    birth_date: Annotated[str, Form(max_length=40)] = "",
    contact_address: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(
            IdentityUpdate,
            {"name": name, "birth_date": birth_date, "contact_address": contact_address},
        )
        await cases.record_identity(session, access, report, data)

    return await _act(request, session, current, case_id, step(), "identity")


@router.post("/cases/{case_id}/meeting", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def plan_meeting(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    when: Annotated[str, Form(max_length=40)] = "",
    place: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    message: Annotated[str, Form(max_length=RAW_TEXT * 2)] = "",
    late_reason: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)

    async def step() -> None:
        data = _validated(
            MeetingPlan,
            {"when": when, "place": place, "message": message, "late_reason": late_reason},
        )
        if data.when.tzinfo is None:
            # A datetime-local field: the person means their own clock, not UTC.
            data = data.model_copy(update={"when": data.when.replace(tzinfo=cases.PRAGUE)})
        await cases.plan_meeting(session, settings, access, report, data)

    return await _act(request, session, current, case_id, step(), "meeting")


@router.post("/cases/{case_id}/legal-hold", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def hold(
    case_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    reason: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    access, report = await cases.open_case(session, current, case_id)
    return await _act(
        request, session, current, case_id, cases.hold(session, access, report, reason), "held"
    )


@router.post(
    "/cases/{case_id}/legal-hold/release",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def release_hold(
    case_id: str, request: Request, session: SessionDep, current: CurrentMemberDep
) -> Response:
    access, report = await cases.open_case(session, current, case_id)
    return await _act(
        request,
        session,
        current,
        case_id,
        cases.release_hold(session, access, report),
        "hold_released",
    )


@router.post("/cases/{case_id}/close", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def close(
    case_id: str, request: Request, session: SessionDep, current: CurrentMemberDep
) -> Response:
    access, report = await cases.open_case(session, current, case_id)
    return await _act(
        request, session, current, case_id, cases.close(session, access, report), "closed"
    )


@router.get("/cases/{case_id}/files/{attachment_id}", response_model=None)
async def download_file(
    case_id: str,
    attachment_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
) -> Response:
    """One file of the case, decrypted as it streams; the reason of access comes first."""
    access, report = await cases.open_case(session, current, case_id)
    if not await cases.read_reason_given(session, current, report):
        return redirect(request, f"/cases/{case_id}")
    attachment, read = await cases.case_attachment(session, access, report, attachment_id)
    chunks = attachments.stream_file(
        request.app.state.sessionmaker, attachment, cases.report_key(access, report)
    )
    response: StreamingResponse = attachments.download_response(
        chunks, read.name, read.content_type, read.size
    )
    return response
