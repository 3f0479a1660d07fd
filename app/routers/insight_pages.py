"""The designated person's statistics and audit pages of one organisation."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from app import i18n
from app.db import SessionDep
from app.deps import CurrentMemberDep
from app.i18n import N_, gettext
from app.schemas.report import CATEGORIES
from app.services import audit, cases, charts, organisations, statistics
from app.templating import render, request_language
from app.vocabulary import AUDIT_ACTION_LABELS, CHANNEL_LABELS, OUTCOME_LABELS, TRIAGE_LABELS

router = APIRouter(include_in_schema=False)

MONTHS = (
    N_("January"), N_("February"), N_("March"), N_("April"), N_("May"), N_("June"), N_("July"),
    N_("August"), N_("September"), N_("October"), N_("November"), N_("December"),
)  # fmt: skip
OUTCOMES_OR_PENDING = {**OUTCOME_LABELS, "pending": N_("Pending")}
AREA_LABELS = {**CATEGORIES, statistics.NO_AREA: N_("Not given")}


def _labelled(counts: dict[str, int], labels: dict[str, str]) -> list[tuple[str, int]]:
    """Translated labels with their counts; an unknown key shows as it is stored."""
    return [(gettext(labels[key]) if key in labels else key, n) for key, n in counts.items()]


def _chart(title: str, rows: list[tuple[str, int]]) -> Markup:
    # The chart escapes every label itself.
    return Markup(charts.bar_chart(title, [label for label, _ in rows], [n for _, n in rows]))  # noqa: S704


@router.get("/organisations/{slug}/statistics", response_class=HTMLResponse)
async def show_statistics(
    slug: str,
    request: Request,
    current: CurrentMemberDep,
    session: SessionDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> HTMLResponse:
    [access] = await cases.accessible_organisations(session, current, slug)
    figures = await statistics.organisation_statistics(session, access, year=year)
    # The charts are drawn here with translated labels, before render() sets the language.
    i18n.set_language(request_language(request))
    months = [(gettext(month), n) for month, n in zip(MONTHS, figures.per_month, strict=True)]
    sections = [
        (N_("Cases per month"), months),
        (N_("Cases per channel"), _labelled(figures.per_channel, CHANNEL_LABELS)),
        (N_("Cases per area"), _labelled(figures.per_area, AREA_LABELS)),
        (N_("Cases per outcome"), _labelled(figures.per_outcome, OUTCOMES_OR_PENDING)),
        (N_("Cases per priority"), _labelled(figures.per_priority, TRIAGE_LABELS)),
        (
            N_("Cases per risk of retaliation"),
            _labelled(figures.per_retaliation_risk, TRIAGE_LABELS),
        ),
    ]
    tables = [
        {"title": gettext(title), "rows": rows, "chart": _chart(gettext(title), rows)}
        for title, rows in sections
    ]
    return render(
        request,
        "admin/statistics.html",
        {"organisation": access.organisation, "figures": figures, "tables": tables},
    )


@router.get("/organisations/{slug}/audit", response_class=HTMLResponse)
async def show_audit(
    slug: str, request: Request, current: CurrentMemberDep, session: SessionDep
) -> HTMLResponse:
    # The trail holds no report content: no key is needed, so a member still awaiting a grant
    # can check it too; the reasons of access open only with the organisation key.
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    keys = await cases.reason_keys(session, current, slug)
    log = await statistics.audit_log(session, organisation, keys, current.member.id)
    return render(
        request,
        "admin/audit.html",
        {
            "organisation": organisation,
            "log": log,
            "actions": AUDIT_ACTION_LABELS,
            "short_hash": audit.short_hash,
        },
    )
