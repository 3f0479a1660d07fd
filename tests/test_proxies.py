"""Per-address limits behind a proxy: X-Forwarded-For counts only from a trusted peer."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from app.main import create_app
from tests.conftest import make_settings

PROXY = "10.0.0.1"
LOOKUPS = 3


@asynccontextmanager
async def _client_from(
    tmp_path: Path, database_url: str, peer: str, trusted_proxies: str = PROXY
) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind `trusted_proxies`, called from the address `peer`."""
    settings = make_settings(
        tmp_path, database_url, trusted_proxies=trusted_proxies, lookups_per_10_minutes=LOOKUPS
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await app.state.engine.dispose()


async def _lookup(client: httpx.AsyncClient, forwarded_for: str) -> int:
    response = await client.get(
        "/api/v1/public/reports/self",
        headers={"X-Tracking-Code": "WRONG", "X-Forwarded-For": forwarded_for},
    )
    return response.status_code


async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored_by_the_limits(
    tmp_path: Path, database_url: str
) -> None:
    async with _client_from(tmp_path, database_url, peer="192.0.2.7") as client:
        answers = [await _lookup(client, f"198.51.100.{n}") for n in range(LOOKUPS + 1)]
    # Each request claims another address: all of them still count against the peer's.
    assert answers == [404] * LOOKUPS + [429]


async def test_the_trusted_proxys_forwarded_address_is_the_one_the_limits_count(
    tmp_path: Path, database_url: str
) -> None:
    async with _client_from(tmp_path, database_url, peer=PROXY) as client:
        others = [await _lookup(client, f"198.51.100.{n}") for n in range(LOOKUPS + 1)]
        one = [await _lookup(client, "203.0.113.9") for _ in range(LOOKUPS + 1)]
    assert others == [404] * (LOOKUPS + 1)  # clients behind one proxy are not limited together
    assert one == [404] * LOOKUPS + [429]  # while each of them is


async def test_a_proxy_given_as_a_network_is_trusted(tmp_path: Path, database_url: str) -> None:
    async with _client_from(
        tmp_path, database_url, peer="10.0.0.42", trusted_proxies="127.0.0.1, 10.0.0.0/24"
    ) as client:
        answers = [await _lookup(client, f"198.51.100.{n}") for n in range(LOOKUPS + 1)]
    assert answers == [404] * (LOOKUPS + 1)


async def test_without_trusted_proxies_no_forwarded_address_is_believed(
    tmp_path: Path, database_url: str
) -> None:
    async with _client_from(tmp_path, database_url, peer=PROXY, trusted_proxies="") as client:
        answers = [await _lookup(client, f"198.51.100.{n}") for n in range(LOOKUPS + 1)]
    assert answers == [404] * LOOKUPS + [429]
