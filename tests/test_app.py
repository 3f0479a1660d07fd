import subprocess
import sys
from pathlib import Path

import httpx
from babel.messages.pofile import read_po

from app.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parent.parent


async def test_healthz_answers_when_the_database_does(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_pages_send_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/register")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"


async def test_pages_load_nothing_from_other_hosts(client: httpx.AsyncClient) -> None:
    for path in ("/", "/register", "/login"):
        html = (await client.get(path)).text
        assert "http://" not in html.replace("http://testserver", "")
        assert "https://" not in html
        assert "//" not in html.replace("://", "")


async def test_unknown_api_path_is_404_in_the_json_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_openapi_describes_the_api(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/organisations" in paths
    assert "/api/v1/auth/login" in paths
    assert "/register" not in paths


async def test_czech_is_the_default_and_english_is_a_switch(client: httpx.AsyncClient) -> None:
    czech = await client.get("/register")
    english = await client.get("/register?lang=en")
    assert '<html lang="cs">' in czech.text
    assert "Registrace organizace" in czech.text
    assert '<html lang="en">' in english.text
    assert "Register an organisation" in english.text
    assert 'href="/register?lang=en"' in czech.text


def test_every_message_has_a_czech_translation(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg",
         "-k", "N_", "-o", str(pot), "--no-location", "--omit-header", "."],
        cwd=ROOT,
        check=True,
    )  # fmt: skip
    with pot.open("rb") as handle:
        wanted = {message.id for message in read_po(handle) if message.id}
    with (LOCALE_DIR / "cs" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="cs")
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    assert sorted(map(str, wanted - translated)) == []
