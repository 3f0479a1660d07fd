"""The whistleblower's pages in Chromium: without JavaScript, in an iframe, the tracking link."""

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser, FrameLocator, Page, expect
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import Organisation
from app.services.organisations import embed_snippet
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


@pytest.fixture
async def snippet_site(
    live_server: str, slug: str, settings: Settings, sessionmaker: Sessionmaker
) -> AsyncIterator[str]:
    """An allowed website that embeds the form with the snippet the settings page hands out,
    below a long introduction, as organisations do."""
    port = free_port()
    origin = f"http://localhost:{port}"
    async with sessionmaker() as session, session.begin():
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
        assert organisation is not None
        organisation.embed_origins = origin
        served = settings.model_copy(update={"public_url": live_server})
        snippet = embed_snippet(served, organisation, "en")
    site = FastAPI()

    @site.get("/")
    def page() -> HTMLResponse:
        return HTMLResponse(
            '<!doctype html><meta name="viewport" content="width=device-width">'
            '<h1>Firma s.r.o.</h1><p style="height:600px">Our whistleblowing policy.</p>'
            f'{snippet}<footer style="height:600px">Contacts</footer>'
        )

    with ServerThread(site, port):
        yield origin


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


async def test_the_tracking_link_opens_the_case_and_leaves_the_code_out_of_the_address(
    browser: Browser, live_server: str, slug: str
) -> None:
    page = await browser.new_page()
    await page.goto(f"{live_server}/{slug}?lang=en")
    code = await _submit(page)
    link = await page.locator("#tracking-link").get_attribute("href")
    assert link == f"{live_server}/{slug}/track?lang=en#{code}"
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(link)
    await expect(page.get_by_text(DESCRIPTION)).to_be_visible()
    assert code not in page.url
    assert code not in await page.evaluate("location.href")
    assert requested
    assert not [url for url in requested if code in url.partition("#")[0]]
    await page.close()


async def test_an_old_tracking_link_opens_the_case_and_drops_the_code_from_the_address(
    browser: Browser, live_server: str, slug: str
) -> None:
    page = await browser.new_page()
    await page.goto(f"{live_server}/{slug}?lang=en")
    code = await _submit(page)
    await page.goto(f"{live_server}/track/{code}?lang=en")
    await expect(page.get_by_text(DESCRIPTION)).to_be_visible()
    assert page.url == f"{live_server}/track?lang=en"
    await page.close()

    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{live_server}/track/{code}?lang=en")
    assert DESCRIPTION not in await page.content()
    await page.get_by_role("button", name="Open").click()
    await expect(page.get_by_text(DESCRIPTION)).to_be_visible()
    await context.close()


async def test_the_print_button_appears_only_where_printing_works(
    browser: Browser, live_server: str, slug: str, snippet_site: str
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{live_server}/{slug}?lang=en")
    await _submit(page)
    await expect(page.get_by_role("button", name="Print")).to_be_hidden()
    await expect(page.locator("#print-help")).to_contain_text("on a phone")
    await context.close()

    page = await browser.new_page()
    await page.goto(f"{live_server}/{slug}?lang=en")
    await _submit(page)
    await expect(page.get_by_role("button", name="Print")).to_be_visible()
    await expect(page.locator("#print-help")).to_be_hidden()
    # The embedding snippet's sandbox forbids the print dialog: no button that does nothing.
    await page.goto(snippet_site)
    frame = page.frame_locator("iframe")
    await _submit(frame)
    await expect(frame.get_by_role("button", name="Print")).to_be_hidden()
    await expect(frame.locator("#print-help")).to_be_visible()
    await page.close()


async def test_identity_fields_show_only_when_the_identity_is_given(
    browser: Browser, live_server: str, slug: str
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{live_server}/{slug}?lang=en")
    name = page.get_by_label("Name", exact=True)
    await expect(name).to_be_hidden()
    await page.get_by_label("Give my identity").check()
    await expect(name).to_be_visible()
    await expect(page.get_by_label("Date of birth")).to_be_visible()
    await page.get_by_label("Stay anonymous").check()
    await expect(name).to_be_hidden()
    await context.close()


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


async def test_form_receipt_and_tracking_inside_an_allowed_frame(
    browser: Browser, live_server: str, snippet_site: str
) -> None:
    page = await browser.new_page(viewport={"width": 375, "height": 700})
    await page.goto(snippet_site)
    frame = page.frame_locator("iframe")
    code = await _submit(frame)
    await frame.get_by_role("link", name="Follow your report").click()
    await expect(frame.get_by_text(DESCRIPTION)).to_be_visible()
    await frame.get_by_label("Write to the designated person").fill("Also the March invoices.")
    await frame.get_by_role("button", name="Send", exact=True).click()
    await expect(frame.get_by_text("Message sent.")).to_be_visible()
    assert code not in page.frames[1].url
    await page.close()


async def test_after_sending_in_a_frame_the_receipt_is_in_view_and_the_frame_fits_it(
    browser: Browser, live_server: str, snippet_site: str
) -> None:
    page = await browser.new_page(viewport={"width": 375, "height": 700})
    await page.goto(snippet_site)
    frame = page.frame_locator("iframe")
    await expect(frame.get_by_label("What happened?")).to_be_visible()
    iframe = page.locator("iframe")
    form_height = (await iframe.bounding_box() or {"height": 0})["height"]
    await _submit(frame)
    await expect(frame.locator("#tracking-code")).to_be_in_viewport()
    await expect(frame.get_by_role("heading", name="Your report was received")).to_be_in_viewport()
    content = await frame.locator("body").evaluate("body => body.getBoundingClientRect().height")
    box = await iframe.bounding_box()
    assert box is not None
    assert box["height"] < form_height
    assert abs(box["height"] - content) <= 2
    await page.close()


async def test_without_scripts_the_receipt_is_seen_in_the_frame(
    browser: Browser, live_server: str, snippet_site: str
) -> None:
    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": 375, "height": 700}
    )
    page = await context.new_page()
    await page.goto(snippet_site)
    frame = page.frame_locator("iframe")
    await _submit(frame)
    # The frame keeps the snippet's height; what matters is at the top of the receipt.
    await expect(frame.locator("#tracking-code")).to_be_in_viewport()
    await expect(frame.locator("#tracking-code + p strong")).to_be_in_viewport()
    await context.close()
