"""The whistleblower's pages in Chromium: without JavaScript, in an iframe, the tracking link."""

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser, FrameLocator, Page, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Organisation
from tests.browser import ServerThread, free_port
from tests.factories import verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
DESCRIPTION = "Cash payments to the purchasing manager, every month since March."


@pytest.fixture
async def slug(live_server: str, sessionmaker: Sessionmaker) -> str:
    async with httpx.AsyncClient(base_url=live_server) as client:
        registered = await verified_organisation(client, sessionmaker)
    return str(registered["slug"])


@pytest.fixture
def embedding_site(live_server: str, slug: str) -> Iterator[str]:
    """Another origin (localhost instead of 127.0.0.1, another port) that embeds the form."""
    port = free_port()
    site = FastAPI()

    @site.get("/")
    def page() -> HTMLResponse:
        return HTMLResponse(
            f'<!doctype html><h1>Firma s.r.o.</h1><iframe id="form" src="{live_server}/{slug}'
            '?lang=en" style="width:100%;height:900px"></iframe>'
        )

    with ServerThread(site, port):
        yield f"http://localhost:{port}"


async def _submit(page: Page | FrameLocator, text: str = DESCRIPTION) -> str:
    await page.get_by_label("What happened?").fill(text)
    await page.get_by_role("button", name="Send the report").click()
    code = page.locator("#tracking-code")
    await expect(code).to_be_visible()
    return str(await code.inner_text())


async def test_report_and_follow_it_without_javascript(
    browser: Browser, live_server: str, slug: str
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{live_server}/{slug}?lang=en")
    await page.get_by_label("Where did it happen?").fill("Warehouse Brno")
    code = await _submit(page)
    assert re.fullmatch(r"[2-9A-Z-]{30,40}", code)

    await page.goto(f"{live_server}/track?lang=en")
    await page.get_by_label("Tracking code").fill(code.lower())
    await page.get_by_role("button", name="Open").click()
    await expect(page.get_by_text(DESCRIPTION)).to_be_visible()
    await page.get_by_label("Write to the designated person").fill("The next payment is on Friday.")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.get_by_text("Message sent.")).to_be_visible()
    await expect(page.get_by_text("The next payment is on Friday.")).to_be_visible()
    await context.close()


async def test_tracking_link_opens_the_case(browser: Browser, live_server: str, slug: str) -> None:
    page = await browser.new_page()
    await page.goto(f"{live_server}/{slug}?lang=en")
    await _submit(page)
    link = await page.locator("#tracking-link").get_attribute("href")
    assert link is not None
    await page.goto(link + "?lang=en")
    await expect(page.get_by_text(DESCRIPTION)).to_be_visible()
    await page.close()


async def test_report_from_inside_an_allowed_iframe(
    browser: Browser,
    live_server: str,
    slug: str,
    embedding_site: str,
    sessionmaker: Sessionmaker,
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == slug)
            .values(embed_origins=embedding_site)
        )
    page = await browser.new_page()
    await page.goto(embedding_site)
    frame = page.frame_locator("#form")
    await expect(frame.get_by_role("heading", name=re.compile("Report to"))).to_be_visible()
    code = await _submit(frame)
    assert len(code) > 30
    await page.close()


async def test_iframe_is_refused_for_an_origin_not_allowed(
    browser: Browser, live_server: str, slug: str, embedding_site: str
) -> None:
    page = await browser.new_page()
    await page.goto(embedding_site)  # waits for the load event, which waits for the iframe
    assert len(page.frames) == 2
    content = await page.frames[1].content()
    assert "Report to" not in content
    assert await page.frame_locator("#form").get_by_label("What happened?").count() == 0
    await page.close()
