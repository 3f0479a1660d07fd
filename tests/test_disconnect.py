"""A client that goes away in the middle of its request body is not an error of the server."""

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import submit, verified_organisation
from tests.served import ServedApp

ABORTED = 20


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[ServedApp]:
    app = ServedApp(tmp_path / "served", database_url)
    try:
        yield app.start()
    finally:
        app.stop()


async def _send_half_and_hang_up(port: int, slug: str) -> None:
    """A multipart upload that declares 1 MiB, sends a tenth of it and closes the socket."""
    boundary = secrets.token_hex(16)
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="description"\r\n\r\n'
        f'Cut off.\r\n--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    head = (
        f"POST /api/v1/public/{slug}/reports HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {1024 * 1024}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + start + secrets.token_bytes(100 * 1024))
    await writer.drain()
    await asyncio.sleep(0.2)  # the server is reading the body when the client goes
    writer.close()
    await writer.wait_closed()


async def test_a_client_that_hangs_up_mid_body_is_logged_as_one_info_line_without_a_trace(
    served: ServedApp, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        organisation = await verified_organisation(http, sessionmaker)
        await asyncio.gather(
            *(_send_half_and_hang_up(served.port, organisation["slug"]) for _ in range(ABORTED))
        )
        marker = "client went away before its request was read"
        async with asyncio.timeout(30):
            while served.log.read_text().count(marker) < ABORTED:
                await asyncio.sleep(0.1)
        await submit(http, organisation["slug"])  # the service goes on answering
    log = served.log.read_text()
    assert log.count(marker) == ABORTED
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert "Exception in ASGI application" not in log
