"""The designated person's path in Chromium: from the login to the decision on a report."""

import httpx
from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import PASSWORD, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
DESCRIPTION = "The warehouse manager sells the company's fuel on weekends."


async def _submit_button(page: Page, name: str) -> None:
    await page.get_by_role("button", name=name, exact=True).click()


async def test_designated_person_handles_a_report(
    browser: Browser, live_server: str, sessionmaker: Sessionmaker
) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        organisation = await verified_organisation(client, sessionmaker)
        await submit(client, organisation["slug"], description=DESCRIPTION)

    page = await browser.new_page()
    await page.goto(f"{live_server}/login?lang=en")
    await page.get_by_label("E-mail").fill(organisation["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await _submit_button(page, "Log in")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await expect(page.get_by_text("1 case")).to_be_visible()

    await page.get_by_role("link", name="Cases", exact=True).click()
    await expect(page.get_by_role("heading", name="Cases")).to_be_visible()
    row = page.locator("tr.case")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(organisation["name"])
    await row.get_by_role("link").click()

    # The first opening in a session asks why; the content stays hidden until then.
    await expect(page.get_by_label("Reason of access")).to_be_visible()
    await expect(page.get_by_text(DESCRIPTION)).to_have_count(0)
    await page.get_by_label("Reason of access").fill("Initial assessment")
    await _submit_button(page, "Open the case")
    await expect(page.locator("#report > p.prewrap")).to_have_text(DESCRIPTION)

    acknowledgement = page.get_by_label("Acknowledgement to the whistleblower")
    await expect(acknowledgement).to_contain_text("Potvrzujeme")
    await _submit_button(page, "Send the acknowledgement")
    await expect(page.get_by_role("status")).to_contain_text("Receipt acknowledged")
    await expect(page.locator("#case-status")).to_have_text("Acknowledged")
    await expect(page.locator("#thread")).to_contain_text("Potvrzujeme")

    await page.get_by_label("Message to the whistleblower").fill("Can you name a witness?")
    await _submit_button(page, "Send the message")
    await expect(page.get_by_role("status")).to_contain_text("Message sent")
    await expect(page.locator("#thread")).to_contain_text("Can you name a witness?")

    await page.get_by_label("Reason for the extension").fill("The stock-taking ends next month.")
    await _submit_button(page, "Extend the deadline")
    await expect(page.get_by_role("status")).to_contain_text("The deadline was extended")
    await expect(page.locator("#extensions")).to_have_text("1 of 2")
    await expect(page.locator("#thread")).to_contain_text("The stock-taking ends next month.")

    await page.get_by_label("Not valid", exact=True).check()
    await _submit_button(page, "Record the outcome")
    await expect(page.get_by_role("status")).to_contain_text("The outcome was recorded")
    await expect(page.locator("#case-outcome")).to_have_text("Not valid")
    await expect(page.locator("#thread")).to_contain_text("https://oznamovatel.justice.cz/")
    await expect(page.get_by_role("button", name="Close the case")).to_be_visible()
    reference = (await page.get_by_role("heading", level=1).inner_text()).split()[-1]

    # The register (§ 21) asks for its own reason, then lists the decided case.
    await page.get_by_role("link", name="Register of reports", exact=True).click()
    await expect(page.get_by_role("heading", name="Register of reports")).to_be_visible()
    await page.get_by_label("Reason for viewing the register").fill("Annual review")
    await _submit_button(page, "Show the register")
    table = page.locator("table.register")
    await expect(table).to_be_visible()
    await expect(table.get_by_role("rowheader", name=reference)).to_be_visible()
    await expect(table).to_contain_text("Not valid")
    await page.close()
