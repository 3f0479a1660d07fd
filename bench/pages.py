"""The whistleblower's pages as a browser loads them cold: bytes on the wire, requests, hosts.

Headless Chromium (Debian's, driven by Playwright as tests/browser.py does) opens the report
form `/{slug}` and `/track`, each in a fresh context with an empty cache, and every request
made is counted with its transferred size (headers and body); any to another host is named.

Run: .venv/bin/python bench/pages.py
"""

import asyncio
import sys
from pathlib import Path
from urllib.parse import urlsplit

import common
from playwright.async_api import Browser, Request, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


async def load_cold(browser: Browser, url: str) -> tuple[list[tuple[str, int]], list[str]]:
    """Each request's URL and bytes transferred, and the URLs of other hosts."""
    context = await browser.new_context()
    page = await context.new_page()
    requests: list[Request] = []

    def seen(request: Request) -> None:
        requests.append(request)

    page.on("requestfinished", seen)
    page.on("requestfailed", seen)
    await page.goto(url, wait_until="networkidle")
    own = urlsplit(url).netloc
    sizes = []
    for request in requests:
        size = await request.sizes()
        sizes.append((request.url, size["responseHeadersSize"] + size["responseBodySize"]))
    foreign = [r.url for r in requests if urlsplit(r.url).netloc not in (own, "")]
    await context.close()
    return sizes, foreign


async def measure(server_url: str, slug: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path in (f"/{slug}", "/track"):
                sizes, foreign = await load_cold(browser, server_url + path)
                total = sum(size for _, size in sizes)
                print(f"{path:<12} {total / 1024:6.1f} KB on the wire in {len(sizes)} requests")
                for url, size in sizes:
                    print(f"    {size / 1024:6.1f} KB  {urlsplit(url).path}")
                print(f"    requests to other hosts: {foreign or 'none'}")
        finally:
            await browser.close()


def main() -> None:
    parser = common.arguments(__doc__ or "")
    args = parser.parse_args()
    with common.pistalka(args.database_url) as server:
        slug = common.set_up_organisation(server, args.database_url)
        asyncio.run(measure(server.url, slug))


if __name__ == "__main__":
    main()
