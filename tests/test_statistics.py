"""The statistics and audit pages of an organisation, on SQLite and PostgreSQL."""

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import AuditEvent, PurgedReport, Report
from app.models.base import utcnow
from app.services import charts, deadlines
from tests.factories import login, register, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = {"X-Access-Reason": "initial assessment"}
SVG = "{http://www.w3.org/2000/svg}"
# A finished year, so every deadline of its cases has passed and the figures do not move.
YEAR = deadlines.local_date(utcnow()).year - 1


def _at(month: int, day: int) -> datetime:
    return datetime(YEAR, month, day, 9, tzinfo=UTC)


def _on(month: int, day: int) -> date:
    return date(YEAR, month, day)


# Per report, in the order submitted: its area and the dates it gets in the database.
CASES: list[dict[str, Any]] = [
    {  # acknowledged in 2 days, valid after 20 days: both on time
        "category": "tax",
        "dates": {
            "received_at": _at(3, 10),
            "acknowledgement_due_on": _on(3, 17),
            "assessment_due_on": _on(4, 9),
            "acknowledged_at": _at(3, 12),
            "decided_at": _at(3, 30),
        },
    },
    {  # acknowledged after 10 days, not valid after 50 days: both late
        "category": "tax",
        "dates": {
            "received_at": _at(3, 20),
            "acknowledgement_due_on": _on(3, 27),
            "assessment_due_on": _on(4, 21),
            "acknowledged_at": _at(3, 30),
            "decided_at": _at(5, 9),
        },
    },
    {  # by post, never acknowledged nor decided: overdue
        "category": "privacy",
        "dates": {
            "received_at": _at(6, 2),
            "acknowledgement_due_on": _on(6, 9),
            "assessment_due_on": _on(7, 2),
            "channel": "post",
        },
    },
    {  # acknowledged the next day, extended once, not decided: overdue
        "category": None,
        "dates": {
            "received_at": _at(6, 5),
            "acknowledgement_due_on": _on(6, 12),
            "assessment_due_on": _on(8, 4),
            "acknowledged_at": _at(6, 6),
        },
    },
]


@pytest.fixture
async def organisation(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, Any]:
    """Four cases of last year in different states, one of this year, the DP logged in."""
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    for case in CASES:
        fields = {"category": case["category"]} if case["category"] else {}
        await submit(client, slug, **fields)
    await submit(client, slug, category="other")  # this year's case
    assert (await login(client, registered["email"])).status_code == 200
    async with sessionmaker() as session:
        ids = list(
            await session.scalars(select(Report.id).order_by(Report.reference_number).limit(4))
        )
    for case_id in ids:
        opened = await client.get(f"/api/v1/cases/{case_id}", headers=REASON)
        assert opened.status_code == 200
    first, second, _, fourth = (f"/api/v1/cases/{case_id}" for case_id in ids)
    for path in (first, second, fourth):
        assert (await client.post(f"{path}/acknowledge", json={})).status_code == 200
    valid = await client.post(f"{first}/decision", json={"outcome": "valid"})
    assert valid.status_code == 200
    not_valid = await client.post(f"{second}/decision", json={"outcome": "not_valid"})
    assert not_valid.status_code == 200
    extended = await client.post(f"{fourth}/extend", json={"reason": "Witnesses are on leave."})
    assert extended.status_code == 200
    async with sessionmaker() as session, session.begin():
        for case_id, case in zip(ids, CASES, strict=True):
            await session.execute(update(Report).where(Report.id == case_id).values(case["dates"]))
    return {**registered, "ids": ids}


def _parse(source: str) -> ET.Element:
    # Our own charts, so the standard parser's exposure to hostile XML does not apply.
    return ET.fromstring(source)  # noqa: S314


def _rows(html: str, title: str) -> dict[str, str]:
    """The rows of the table captioned `title`: label -> number."""
    table = re.search(rf"<caption>{re.escape(title)}</caption>(.*?)</table>", html, re.S)
    assert table is not None, f"no table {title!r}"
    return dict(re.findall(r'<th scope="row">(.*?)</th><td>(\d+)</td>', table.group(1)))


def _indicators(html: str) -> dict[str, str]:
    found = re.search(r'<dl class="indicators">(.*?)</dl>', html, re.S)
    assert found is not None
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", found.group(1))
    return {term: re.sub(r"<[^>]+>", "", value) for term, value in pairs}


async def _statistics(client: httpx.AsyncClient, slug: str, **params: str) -> str:
    response = await client.get(
        f"/organisations/{slug}/statistics", params={"lang": "en", **params}
    )
    assert response.status_code == 200, response.text
    return response.text


async def test_statistics_count_the_cases_of_the_year(
    client: httpx.AsyncClient, organisation: dict[str, Any]
) -> None:
    html = await _statistics(client, organisation["slug"], year=str(YEAR))
    indicators = _indicators(html)
    assert indicators["Cases received"] == "4"
    assert indicators["Median days from receipt to acknowledgement"] == "2"
    assert indicators["Median days from receipt to the outcome"] == "35"
    assert indicators["Acknowledgements sent by their deadline"] == "50 % (2 of 4)"
    assert indicators["Assessments done by their deadline"] == "25 % (1 of 4)"
    assert indicators["Overdue now"] == "2"
    assert indicators["Extensions used"] == "1"
    months = _rows(html, "Cases per month")
    assert len(months) == 12
    assert (months["March"], months["June"], months["January"]) == ("2", "2", "0")
    assert _rows(html, "Cases per channel") == {"Web form": "3", "Post": "1"}
    assert _rows(html, "Cases per area") == {
        "Taxes and the EU&#39;s financial interests": "2",
        "Privacy, personal data and network security": "1",
        "Not given": "1",
    }
    assert _rows(html, "Cases per outcome") == {
        "Valid": "1",
        "Not valid": "1",
        "Not a report under the Act": "0",
        "Pending": "2",
    }


async def test_statistics_count_erased_cases_by_their_tombstones(
    client: httpx.AsyncClient, organisation: dict[str, Any], sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session, session.begin():
        report = await session.get_one(Report, organisation["ids"][0])
        session.add(
            PurgedReport(
                id=uuid.uuid4(),
                organisation_id=report.organisation_id,
                reference_year=YEAR,
                reference_number=99,
                channel="telephone",
                received_at=_at(3, 1),
                decided_at=_at(3, 11),
                outcome="valid",
            )
        )
    html = await _statistics(client, organisation["slug"], year=str(YEAR))
    indicators = _indicators(html)
    assert indicators["Cases received"] == "5"
    assert indicators["Of them erased after the retention period"] == "1"
    assert indicators["Median days from receipt to the outcome"] == "20"
    assert _rows(html, "Cases per month")["March"] == "3"
    assert _rows(html, "Cases per channel") == {"Web form": "3", "Post": "1", "Telephone": "1"}
    assert _rows(html, "Cases per outcome")["Valid"] == "2"
    assert "Not given" in _rows(html, "Cases per area")  # the live cases only
    assert sum(map(int, _rows(html, "Cases per area").values())) == 4


async def test_statistics_default_to_this_year(
    client: httpx.AsyncClient, organisation: dict[str, Any]
) -> None:
    html = await _statistics(client, organisation["slug"])
    indicators = _indicators(html)
    assert indicators["Cases received"] == "1"
    assert indicators["Median days from receipt to the outcome"] == "—"
    assert indicators["Assessments done by their deadline"] == "—"
    assert _rows(html, "Cases per area") == {"Something else": "1"}
    assert f'<option value="{YEAR}">' in html


async def test_statistics_draw_well_formed_accessible_charts(
    client: httpx.AsyncClient, organisation: dict[str, Any]
) -> None:
    html = await _statistics(client, organisation["slug"], year=str(YEAR))
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) == 6
    for source in svgs:
        svg = _parse(source)
        assert svg.get("role") == "img"
        title = svg.find(f"{SVG}title")
        assert title is not None
        assert svg.get("aria-labelledby") == title.get("id")
        assert len(svg.findall(f"{SVG}g")) >= 1
        assert "<script" not in source
        assert "href" not in source
    per_month = _parse(svgs[0])
    assert per_month.findtext(f"{SVG}title") == "Cases per month"
    assert len(per_month.findall(f"{SVG}g")) == 12


async def test_statistics_page_view_is_audited_once(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, Any]
) -> None:
    await _statistics(client, organisation["slug"], year=str(YEAR))
    async with sessionmaker() as session:
        events = list(
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "stats.read"))
        )
    assert [(e.detail, e.report_id) for e in events] == [("statistics", None)]


def test_bar_chart_escapes_labels() -> None:
    source = charts.bar_chart('Areas <b>&"', ["<script>alert(1)</script>", "O'Brien & co"], [3, 0])
    svg = _parse(source)
    assert svg.findtext(f"{SVG}title") == 'Areas <b>&"'
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts == ["<script>alert(1)</script>", "3", "O'Brien & co", "0"]
    assert "<script>" not in source
    widths = [rect.get("width") for rect in svg.iter(f"{SVG}rect")]
    assert float(widths[0] or 0) > 0
    assert widths[1] == "0"


def test_bar_chart_ids_differ_per_chart() -> None:
    one = _parse(charts.bar_chart("Cases per channel", ["Web form"], [1]))
    other = _parse(charts.bar_chart("Cases per outcome", ["Valid"], [1]))
    assert one.get("aria-labelledby") != other.get("aria-labelledby")


async def test_audit_page_lists_the_events_and_verifies_the_chain(
    client: httpx.AsyncClient, organisation: dict[str, Any]
) -> None:
    response = await client.get(f"/organisations/{organisation['slug']}/audit?lang=en")
    assert response.status_code == 200
    html = response.text
    assert re.search(r'<span class="ok">OK</span>: the chain of \d+ events is intact', html)
    assert "Acknowledged receipt" in html
    assert "Recorded the outcome" in html
    assert "Extended the deadline" in html
    assert "initial assessment" in html
    assert organisation["email"] in html
    year = deadlines.local_date(utcnow()).year
    assert f">{year}-0001</a>" in html
    seqs = [int(seq) for seq in re.findall(r"<tr>\s*<td>(\d+)</td>", html)]
    assert seqs == sorted(seqs, reverse=True)


async def test_audit_page_shows_where_a_changed_event_breaks_the_chain(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, Any]
) -> None:
    async with sessionmaker() as session, session.begin():
        changed = await session.execute(
            update(AuditEvent).where(AuditEvent.seq == 3).values(detail="nothing to see")
        )
        assert changed.rowcount == 1  # type: ignore[attr-defined]
    html = (await client.get(f"/organisations/{organisation['slug']}/audit?lang=en")).text
    assert "The chain is broken at event 3." in html
    assert "The 2 events before it are intact." in html
    assert 'class="ok"' not in html


async def test_audit_page_shows_the_id_of_a_purged_case(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, Any]
) -> None:
    purged: uuid.UUID = organisation["ids"][0]
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(Report).where(Report.id == purged))
    html = (await client.get(f"/organisations/{organisation['slug']}/audit?lang=en")).text
    assert f"<code>{purged}</code>" in html
    assert "the chain of" in html


@pytest.mark.parametrize("page", ["statistics", "audit"])
async def test_another_organisations_pages_are_not_found(
    client: httpx.AsyncClient, organisation: dict[str, Any], page: str
) -> None:
    other = await register(client)
    for slug in (other["slug"], "no-such-organisation"):
        response = await client.get(f"/organisations/{slug}/{page}")
        assert response.status_code == 404


@pytest.mark.parametrize("page", ["statistics", "audit"])
async def test_pages_need_a_login(client: httpx.AsyncClient, page: str) -> None:
    registered = await register(client)
    response = await client.get(f"/organisations/{registered['slug']}/{page}")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_pages_speak_czech_by_default(
    client: httpx.AsyncClient, organisation: dict[str, Any]
) -> None:
    slug = organisation["slug"]
    statistics = (await client.get(f"/organisations/{slug}/statistics?year={YEAR}")).text
    assert "Případy podle měsíců" in statistics
    assert '<th scope="row">březen</th><td>2</td>' in statistics
    audit = (await client.get(f"/organisations/{slug}/audit")).text
    assert "V pořádku" in audit
    assert "Potvrdil(a) přijetí" in audit
