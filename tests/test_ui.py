"""Browser tests of registration and login in Chromium (fixtures in tests/browser.py)."""

from playwright.async_api import Browser, Page, expect

from tests.factories import PASSWORD, organisation_data


async def _register_and_log_in(page: Page, base: str) -> dict[str, str]:
    data = organisation_data()
    await page.goto(f"{base}/register?lang=en")
    await page.get_by_label("Organisation name").fill(data["name"])
    await page.get_by_label("IČO (company number)").fill(data["ico"])
    await page.get_by_label("Registered address").fill(data["address"])
    await page.get_by_label("Address of your report form").fill(data["slug"])
    await page.get_by_label("E-mail of the designated person").fill(data["email"])
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_role("button", name="Register").click()

    await expect(page.get_by_role("heading", name="Your recovery key")).to_be_visible()
    assert len((await page.locator("#recovery-key").inner_text()).replace("-", "")) >= 52

    await page.get_by_role("link", name="Continue to log in").click()
    await page.get_by_label("E-mail").fill(data["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await expect(page.get_by_text("No reports yet.")).to_be_visible()
    return data


async def test_register_log_in_and_out_in_a_browser(browser: Browser, live_server: str) -> None:
    page = await browser.new_page()
    await _register_and_log_in(page, live_server)
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in as a designated person")).to_be_visible()
    await page.goto(f"{live_server}/dashboard")
    await expect(page).to_have_url(f"{live_server}/login")
    await page.close()


async def test_registration_and_login_work_without_javascript(
    browser: Browser, live_server: str
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await _register_and_log_in(page, live_server)
    await context.close()


async def test_registration_form_shows_errors_in_czech(browser: Browser, live_server: str) -> None:
    page = await browser.new_page()
    await page.goto(f"{live_server}/register")
    await page.get_by_label("IČO").fill("26843821")
    await page.get_by_role("button", name="Zaregistrovat").click()
    await expect(page.get_by_text("Opravte prosím označená pole.")).to_be_visible()
    await expect(
        page.get_by_text("Zadejte platné IČO: 8 číslic se správnou kontrolní číslicí.")
    ).to_be_visible()
    await page.close()
