from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Organisation
from app.models.base import utcnow
from tests.factories import login, on_plan, register

Sessionmaker = async_sessionmaker[AsyncSession]

SETTINGS: dict[str, Any] = {
    "accepts_anonymous": False,
    "only_own_people": True,
    "embed_origins": ["https://www.example.cz"],
    "info_how_to_report": "Write to the compliance office, Street 1, Praha.",
    "info_designated_persons": "Jana Nováková, +420 123 456 789, jana@example.cz",
}


def api_url(slug: str) -> str:
    return f"/api/v1/organisations/{slug}/settings"


def page_url(slug: str) -> str:
    return f"/organisations/{slug}/settings"


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


async def logged_in(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    registered = await register(client, **overrides)
    assert (await login(client, registered["email"])).status_code == 200
    return registered


async def test_new_organisation_has_default_settings(client: httpx.AsyncClient) -> None:
    registered = await logged_in(client)
    slug = registered["slug"]

    response = await client.get(api_url(slug))

    assert response.status_code == 200
    body = response.json()
    assert body["accepts_anonymous"] is True
    assert body["only_own_people"] is False
    assert body["embed_origins"] == []
    assert body["info_how_to_report"] == ""
    assert body["slug"] == slug
    assert body["name"] == registered["name"]
    assert body["form_url"] == f"http://testserver/{slug}"
    assert body["info_url"] == f"http://testserver/{slug}/info"


async def test_settings_round_trip_through_the_api(client: httpx.AsyncClient) -> None:
    slug = (await logged_in(client))["slug"]

    saved = await client.put(api_url(slug), json=SETTINGS)

    assert saved.status_code == 200, saved.text
    read = (await client.get(api_url(slug))).json()
    for body in (saved.json(), read):
        assert {key: body[key] for key in SETTINGS} == SETTINGS


async def test_embed_origins_are_normalised_and_deduplicated(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    slug = (await logged_in(client))["slug"]
    # Several websites: a plan that allows them.
    await on_plan(sessionmaker, slug)
    origins = [
        "HTTPS://WWW.Example.CZ/",
        "https://www.example.cz",
        "https://intranet.example:8443",
        "https://portal.example:443",
        "https://192.0.2.10",
        "http://localhost:8000",
        "http://127.0.0.1",
        "http://[::1]:5173",
    ]

    response = await client.put(api_url(slug), json={**SETTINGS, "embed_origins": origins})

    assert response.status_code == 200, response.text
    assert response.json()["embed_origins"] == [
        "https://www.example.cz",
        "https://intranet.example:8443",
        "https://portal.example",
        "https://192.0.2.10",
        "http://localhost:8000",
        "http://127.0.0.1",
        "http://[::1]:5173",
    ]


async def test_the_form_may_be_framed_only_by_the_allowed_origins(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
) -> None:
    slug = (await logged_in(client))["slug"]
    # Several websites: a plan that allows them.
    await on_plan(sessionmaker, slug)
    origins = ["https://www.example.cz", "https://intranet.example:8443"]
    await client.put(api_url(slug), json={**SETTINGS, "embed_origins": origins})

    form = await client.get(f"/{slug}")

    policy = form.headers["content-security-policy"]
    assert "frame-ancestors https://www.example.cz https://intranet.example:8443" in policy


@pytest.mark.parametrize(
    "origin",
    [
        "https://a.example/path",
        "https://a.example; script-src *",
        "javascript:alert(1)",
        "http://evil.example",
        "*",
        "https://*.a.example",
        "https://a.example?x=1",
        "https://a.example 'unsafe-inline'",
        "https://a.example,https://b.example",
        "https://user@a.example",
        "https://a.example:99999",
        "https://1.2.3",
        "data:",
        "",
    ],
)
async def test_an_invalid_embed_origin_is_refused(client: httpx.AsyncClient, origin: str) -> None:
    slug = (await logged_in(client))["slug"]

    response = await client.put(
        api_url(slug), json={**SETTINGS, "embed_origins": ["https://ok.example", origin]}
    )

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "embed_origins"
    assert (await client.get(api_url(slug))).json()["embed_origins"] == []


async def test_more_than_twenty_embed_origins_are_refused(client: httpx.AsyncClient) -> None:
    slug = (await logged_in(client))["slug"]
    origins = [f"https://site{n}.example" for n in range(21)]

    response = await client.put(api_url(slug), json={**SETTINGS, "embed_origins": origins})

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "embed_origins"


async def test_an_information_text_over_5000_characters_is_refused(
    client: httpx.AsyncClient,
) -> None:
    slug = (await logged_in(client))["slug"]

    response = await client.put(api_url(slug), json={**SETTINGS, "info_how_to_report": "x" * 5001})

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "info_how_to_report"


async def test_an_unknown_settings_field_is_refused(client: httpx.AsyncClient) -> None:
    slug = (await logged_in(client))["slug"]

    response = await client.put(api_url(slug), json={**SETTINGS, "blocked_at": None})

    assert response.status_code == 422


async def test_the_embed_snippet_frames_the_form_and_trusts_only_the_service(
    client: httpx.AsyncClient,
) -> None:
    slug = (await logged_in(client, name='Smith & "Sons" <b>s.r.o.</b>'))["slug"]

    snippet = (await client.get(api_url(slug))).json()["embed_snippet"]

    assert f'src="http://testserver/{slug}"' in snippet
    assert 'referrerpolicy="no-referrer"' in snippet
    assert "sandbox=" in snippet
    assert "allow-top-navigation-by-user-activation" in snippet
    assert 'event.origin !== "http://testserver"' in snippet
    assert 'event.data.pistalka !== "height"' in snippet
    assert "Smith &amp; &quot;Sons&quot; &lt;b&gt;" in snippet
    assert "<b>" not in snippet


async def test_another_organisations_settings_are_not_found(client: httpx.AsyncClient) -> None:
    other = await register(client)
    await logged_in(client)

    read = await client.get(api_url(other["slug"]))
    write = await client.put(api_url(other["slug"]), json=SETTINGS)
    page = await client.get(page_url(other["slug"]))

    assert read.status_code == 404
    assert read.json()["error"]["code"] == "not_found"
    assert write.status_code == 404
    assert page.status_code == 404


async def test_another_organisations_settings_form_cannot_be_posted(
    client: httpx.AsyncClient,
) -> None:
    other = await register(client)
    own = await logged_in(client)
    csrf = csrf_of(await client.get(page_url(own["slug"])))

    response = await client.post(page_url(other["slug"]), data={"csrf": csrf, "embed_origins": ""})

    assert response.status_code == 404


async def test_settings_need_a_login(client: httpx.AsyncClient) -> None:
    slug = (await register(client))["slug"]

    assert (await client.get(api_url(slug))).status_code == 401
    assert (await client.put(api_url(slug), json=SETTINGS)).status_code == 401
    page = await client.get(page_url(slug))
    assert page.status_code == 303
    assert page.headers["location"] == "/login"


async def test_settings_round_trip_through_the_html_form(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    slug = (await logged_in(client))["slug"]
    # Several websites: a plan that allows them.
    await on_plan(sessionmaker, slug)
    page = await client.get(page_url(slug))
    assert page.status_code == 200
    assert 'name="accepts_anonymous" value="1" checked' in page.text

    response = await client.post(
        page_url(slug),
        data={
            "csrf": csrf_of(page),
            "only_own_people": "1",
            "embed_origins": "HTTPS://www.example.cz/\r\n\r\nhttp://localhost:8000\r\n",
            "info_how_to_report": "Write to us.\r\nOr call.",
            "info_designated_persons": "Jana Nováková",
        },
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"{page_url(slug)}?saved=1"
    saved = await client.get(response.headers["location"])
    assert "Nastavení bylo uloženo." in saved.text
    assert "https://www.example.cz\nhttp://localhost:8000</textarea>" in saved.text
    body = (await client.get(api_url(slug))).json()
    assert {key: body[key] for key in SETTINGS} == {
        "accepts_anonymous": False,
        "only_own_people": True,
        "embed_origins": ["https://www.example.cz", "http://localhost:8000"],
        "info_how_to_report": "Write to us.\nOr call.",
        "info_designated_persons": "Jana Nováková",
    }


async def test_the_settings_page_shows_the_snippet_and_the_public_links(
    client: httpx.AsyncClient,
) -> None:
    slug = (await logged_in(client))["slug"]

    page = await client.get(f"{page_url(slug)}?lang=en")

    assert "&lt;iframe" in page.text
    assert f'href="/{slug}?lang=en"' in page.text
    assert f'href="/{slug}/info?lang=en"' in page.text


async def test_the_html_form_keeps_the_language_after_saving(client: httpx.AsyncClient) -> None:
    slug = (await logged_in(client))["slug"]
    csrf = csrf_of(await client.get(page_url(slug)))

    response = await client.post(f"{page_url(slug)}?lang=en", data={"csrf": csrf})

    assert response.headers["location"] == f"{page_url(slug)}?saved=1&lang=en"


async def test_the_html_form_shows_an_invalid_origin_next_to_the_field(
    client: httpx.AsyncClient,
) -> None:
    slug = (await logged_in(client))["slug"]
    csrf = csrf_of(await client.get(page_url(slug)))

    response = await client.post(
        f"{page_url(slug)}?lang=en",
        data={
            "csrf": csrf,
            "embed_origins": "https://ok.example\nhttps://a.example/path",
            "info_how_to_report": "Kept while correcting.",
        },
    )

    assert response.status_code == 422
    assert 'id="embed_origins-error"' in response.text
    assert "<code>https://a.example/path</code>" in response.text
    assert "Kept while correcting." in response.text
    assert (await client.get(api_url(slug))).json()["embed_origins"] == []


async def test_the_html_form_needs_the_csrf_token(client: httpx.AsyncClient) -> None:
    slug = (await logged_in(client))["slug"]

    response = await client.post(page_url(slug), data={"csrf": "forged", "only_own_people": "1"})

    assert response.status_code == 403
    assert (await client.get(api_url(slug))).json()["only_own_people"] is False


async def test_the_information_page_is_public_and_czech_by_default(
    client: httpx.AsyncClient,
) -> None:
    slug = (await logged_in(client))["slug"]
    await client.put(api_url(slug), json=SETTINGS)
    client.cookies.clear()

    page = await client.get(f"/{slug}/info")

    assert page.status_code == 200
    assert '<html lang="cs">' in page.text
    assert SETTINGS["info_how_to_report"] in page.text
    assert SETTINGS["info_designated_persons"] in page.text
    assert "Organizace nepřijímá anonymní oznámení" in page.text
    assert "pouze od osob, které pro ni vykonávají práci" in page.text
    assert "Zaměstnanci, stážisté a dobrovolníci mohou oznámení podat vždy." in page.text
    assert 'href="https://oznamovatel.justice.cz/"' in page.text
    assert f'href="/{slug}"' in page.text


async def test_the_information_page_in_english(client: httpx.AsyncClient) -> None:
    slug = (await logged_in(client))["slug"]
    await client.put(api_url(slug), json=SETTINGS)

    page = await client.get(f"/{slug}/info?lang=en")

    assert '<html lang="en">' in page.text
    assert "The organisation does not accept anonymous reports" in page.text
    assert "only from people who work for it" in page.text
    assert "Employees, trainees and volunteers may always report." in page.text
    assert f'href="/{slug}?lang=en"' in page.text


async def test_the_information_page_has_sensible_defaults(client: httpx.AsyncClient) -> None:
    slug = (await register(client))["slug"]

    page = await client.get(f"/{slug}/info?lang=en")

    assert page.status_code == 200
    assert "The organisation accepts anonymous reports" in page.text
    assert "also from people who do not work for it" in page.text
    assert "Report through the organisation" in page.text
    assert 'href="https://oznamovatel.justice.cz/"' in page.text
    # § 9: oral and in-person reports, and the meeting one may ask for.
    assert 'id="oral-reports"' in page.text
    assert "ask for a personal meeting" in page.text
    assert "at most 14 days" in page.text


async def test_the_information_page_escapes_the_texts(client: httpx.AsyncClient) -> None:
    slug = (await logged_in(client))["slug"]
    await client.put(api_url(slug), json={**SETTINGS, "info_how_to_report": "<script>x</script>"})

    page = await client.get(f"/{slug}/info")

    assert "<script>x</script>" not in page.text
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text


async def test_an_unknown_organisation_has_no_information_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-organisation/info")

    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]


async def test_a_blocked_organisation_has_no_information_page(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    slug = (await register(client))["slug"]
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation).where(Organisation.slug == slug).values(blocked_at=utcnow())
        )

    assert (await client.get(f"/{slug}/info")).status_code == 404
