"""A full disk under the upload spool: 507 `insufficient_storage`, never a 500 or a cut connection.

The spool directory is a 1 MiB tmpfs of the test's own, so the disk really fills up.
"""

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.main import create_app
from app.routers.intake import _form_token
from tests.conftest import make_settings
from tests.factories import verified_organisation
from tests.served import ServedApp

Sessionmaker = async_sessionmaker[AsyncSession]
TOO_BIG = os.urandom(3 * 1024 * 1024)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem mounted for this test only."""
    if os.geteuid() != 0:
        pytest.skip("mounting the small filesystem needs root")
    mount = tmp_path / "spool"
    mount.mkdir()
    command = ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)]
    mounted = subprocess.run(command, capture_output=True, text=True, timeout=30)  # noqa: S603
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["/usr/bin/umount", str(mount)], timeout=30, check=True)  # noqa: S603


@pytest.fixture
async def served(small_disk: Path, tmp_path: Path, database_url: str) -> AsyncIterator[ServedApp]:
    app = ServedApp(tmp_path / "served", database_url, spool_dir=small_disk)
    try:
        yield app.start()
    finally:
        app.stop()


async def test_an_upload_that_fills_the_spool_disk_answers_507_and_gives_the_space_back(
    served: ServedApp, small_disk: Path, sessionmaker: Sessionmaker
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        organisation = await verified_organisation(http, sessionmaker)
        url = f"/api/v1/public/{organisation['slug']}/reports"
        full = await http.post(
            url, data={"description": "Too much."}, files={"files": ("big.bin", TOO_BIG)}
        )
        assert full.status_code == 507, full.text
        assert full.json()["error"]["code"] == "insufficient_storage"
        assert full.json()["error"]["message"]
        assert list(small_disk.iterdir()) == []
        assert os.statvfs(small_disk).f_bfree == os.statvfs(small_disk).f_blocks
        small = await http.post(
            url, data={"description": "Fits."}, files={"files": ("small.bin", b"evidence")}
        )
        assert small.status_code == 201, small.text
    log = served.log.read_text()
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log


async def test_the_report_form_shows_the_error_page_when_the_spool_disk_is_full(
    small_disk: Path, tmp_path: Path, database_url: str, sessionmaker: Sessionmaker
) -> None:
    settings = make_settings(tmp_path, database_url, spool_dir=small_disk)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            organisation = await verified_organisation(client, sessionmaker)
            page = await client.post(
                f"/{organisation['slug']}?lang=en",
                data={
                    "started": _form_token(settings, int(time.time()) - 10),
                    "website": "",
                    "description": "Too much.",
                },
                files={"files": ("big.bin", TOO_BIG, "application/octet-stream")},
            )
    finally:
        await app.state.engine.dispose()
    assert page.status_code == 507
    assert page.headers["content-type"].startswith("text/html")
    assert "The server has no room for the files just now." in page.text
