"""Factories for tests: an organisation registered through the API, a logged-in client."""

import itertools
from typing import Any

import httpx

_counter = itertools.count(1)
# Valid IČOs (check digit per the mod-11 rule) to spread over organisations.
VALID_ICOS = ("26843820", "26262525", "05588600", "00006947", "45274649", "25596641")
PASSWORD = "correct horse battery"


def organisation_data(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    data = {
        "slug": f"org-{n}",
        "name": f"Organisation {n} s.r.o.",
        "ico": VALID_ICOS[n % len(VALID_ICOS)],
        "address": f"Street {n}, 110 00 Praha 1",
        "email": f"dp{n}@example.cz",
        "password": PASSWORD,
    }
    data.update(overrides)
    return data


async def register(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """Register an organisation through the API; the answer plus the data sent."""
    data = organisation_data(**overrides)
    response = await client.post("/api/v1/organisations", json=data)
    assert response.status_code == 201, response.text
    return {**data, **response.json()}


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, totp: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": password}
    if totp is not None:
        body["totp"] = totp
    return await client.post("/api/v1/auth/login", json=body)
