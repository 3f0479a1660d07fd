"""Files of a report: limits, metadata stripped on the way in, encrypted at rest, downloads."""

import contextlib
import io
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import Attachment, AttachmentChunk, Report, ReportMessage
from tests.factories import verified_organisation
from tests.test_metadata import NAME, _tagged_jpeg
from tests.test_privacy import dump_database

Sessionmaker = async_sessionmaker[AsyncSession]
SECRET_BYTES = b"Ledger of bribes, page 7: 250 000 CZK to the mayor. " * 3000  # ~150 kB


@pytest.fixture
async def slug(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> str:
    return str((await verified_organisation(client, sessionmaker))["slug"])


async def _submit_with_files(
    client: httpx.AsyncClient, slug: str, files: list[tuple[str, bytes, str]]
) -> httpx.Response:
    return await client.post(
        f"/api/v1/public/{slug}/reports",
        data={"description": "See the attached ledger.", "anonymous": "true"},
        files=[("files", file) for file in files],
    )


async def _view(client: httpx.AsyncClient, code: str) -> dict[str, object]:
    response = await client.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
    assert response.status_code == 200
    view: dict[str, object] = response.json()
    return view


async def test_files_are_stored_encrypted_and_download_as_attachments(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, slug: str
) -> None:
    response = await _submit_with_files(
        client, slug, [("C:\\Users\\jan\\ledger 2026.txt", SECRET_BYTES, "text/html")]
    )
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]
    files = (await _view(client, code))["attachments"]
    assert isinstance(files, list)
    assert [(f["name"], f["size"]) for f in files] == [("ledger 2026.txt", len(SECRET_BYTES))]

    download = await client.get(
        f"/api/v1/public/reports/self/files/{files[0]['id']}", headers={"X-Tracking-Code": code}
    )
    assert download.status_code == 200
    assert download.content == SECRET_BYTES
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["content-type"] == "application/octet-stream"  # never text/html
    assert download.headers["x-content-type-options"] == "nosniff"

    async with sessionmaker() as session:
        chunks = await session.scalar(select(func.count()).select_from(AttachmentChunk))
    assert chunks == 3  # 150 kB in 64 KiB chunks
    dump = await dump_database(sessionmaker)
    assert SECRET_BYTES[:40] not in dump
    assert b"ledger 2026" not in dump


async def test_photo_metadata_is_stripped_on_upload(client: httpx.AsyncClient, slug: str) -> None:
    photo = _tagged_jpeg()
    assert NAME in photo
    response = await _submit_with_files(client, slug, [("IMG_0001.jpg", photo, "image/jpeg")])
    code = response.json()["tracking_code"]
    files = (await _view(client, code))["attachments"]
    assert isinstance(files, list)
    download = await client.get(
        f"/api/v1/public/reports/self/files/{files[0]['id']}", headers={"X-Tracking-Code": code}
    )
    assert download.headers["content-type"] == "image/jpeg"
    assert NAME not in download.content
    assert b"GPS" not in download.content
    original = Image.open(io.BytesIO(photo)).tobytes()
    assert Image.open(io.BytesIO(download.content)).tobytes() == original


async def test_too_large_file_is_413_and_nothing_is_kept(
    settings: Settings, sessionmaker: Sessionmaker
) -> None:
    app = create_app(settings.model_copy(update={"max_file_bytes": 100_000}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        slug = str((await verified_organisation(client, sessionmaker))["slug"])
        response = await _submit_with_files(client, slug, [("big.bin", b"x" * 100_001, "")])
    await app.state.engine.dispose()
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "file_too_large"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0
        assert await session.scalar(select(func.count()).select_from(AttachmentChunk)) == 0


async def test_too_many_files_are_refused(
    client: httpx.AsyncClient, settings: Settings, slug: str
) -> None:
    files = [(f"f{i}.txt", b"x", "text/plain") for i in range(settings.max_files + 1)]
    response = await _submit_with_files(client, slug, files)
    assert response.status_code in (400, 413, 422)
    assert "error" in response.json()


async def test_damaged_photo_is_refused_with_a_clear_error(
    client: httpx.AsyncClient, slug: str
) -> None:
    response = await _submit_with_files(
        client, slug, [("cut.jpg", _tagged_jpeg()[:500], "image/jpeg")]
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "bad_file"


async def test_whistleblower_adds_a_file_to_a_message(client: httpx.AsyncClient, slug: str) -> None:
    response = await client.post(
        f"/api/v1/public/{slug}/reports", json={"description": "First the report."}
    )
    code = response.json()["tracking_code"]
    sent = await client.post(
        "/api/v1/public/reports/self/messages",
        data={"body": "Here is the contract."},
        files=[("files", ("contract.txt", b"contract text", "text/plain"))],
        headers={"X-Tracking-Code": code},
    )
    assert sent.status_code == 201, sent.text
    message = sent.json()["messages"][0]
    assert [a["name"] for a in message["attachments"]] == ["contract.txt"]


async def test_another_reports_file_is_404(client: httpx.AsyncClient, slug: str) -> None:
    first = await _submit_with_files(client, slug, [("a.txt", b"first", "text/plain")])
    second = await client.post(f"/api/v1/public/{slug}/reports", json={"description": "other"})
    first_files = (await _view(client, first.json()["tracking_code"]))["attachments"]
    assert isinstance(first_files, list)
    response = await client.get(
        f"/api/v1/public/reports/self/files/{first_files[0]['id']}",
        headers={"X-Tracking-Code": second.json()["tracking_code"]},
    )
    assert response.status_code == 404


async def test_request_larger_than_every_file_together_is_413(
    client: httpx.AsyncClient, settings: Settings, slug: str
) -> None:
    limit = settings.max_files * settings.max_file_bytes + 1024 * 1024
    response = await client.post(
        f"/api/v1/public/{slug}/reports",
        content=b"x",
        headers={
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(limit + 1),
        },
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_body_growing_past_the_limit_is_stopped(
    settings: Settings, sessionmaker: Sessionmaker
) -> None:
    small = settings.model_copy(update={"max_files": 1, "max_file_bytes": 10_000})
    app = create_app(small)

    async def body() -> AsyncIterator[bytes]:  # a file part sent without Content-Length
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.bin"\r\n\r\n'
        for _ in range(20):
            yield b"y" * 65536

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        slug = str((await verified_organisation(client, sessionmaker))["slug"])
        response = await client.post(
            f"/api/v1/public/{slug}/reports",
            content=body(),
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
    await app.state.engine.dispose()
    assert response.status_code == 413, response.text


async def test_a_refused_file_on_the_page_leaves_no_half_stored_report(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings, slug: str
) -> None:
    from tests.test_intake import _form_fields

    response = await client.post(
        f"/{slug}",
        data=_form_fields(settings, description="With a damaged photo."),
        files=[("files", ("cut.jpg", _tagged_jpeg()[:500], "image/jpeg"))],
    )
    assert response.status_code == 422
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0
        assert await session.scalar(select(func.count()).select_from(Report)) == 0


async def test_a_refused_file_on_the_tracking_page_leaves_no_half_sent_message(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, slug: str
) -> None:
    created = await client.post(f"/api/v1/public/{slug}/reports", json={"description": "x"})
    code = created.json()["tracking_code"]
    response = await client.post(
        "/track/messages",
        data={"code": code, "body": "Here is the photo."},
        files=[("files", ("cut.jpg", _tagged_jpeg()[:500], "image/jpeg"))],
    )
    assert response.status_code == 422
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ReportMessage)) == 0


def _open_temporary_files(directory: Path) -> list[bytes]:
    """What every file this process holds open in `directory` contains (unnamed ones too)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(str(directory)):
                found.append(fd.read_bytes())
    return found


async def test_an_upload_is_never_readable_on_disk_while_the_request_is_read(
    client: httpx.AsyncClient, slug: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))
    secret = SECRET_BYTES * 16  # 2.4 MB: more than any upload kept in memory
    head = (
        b'--x\r\nContent-Disposition: form-data; name="description"\r\n\r\nSee the ledger.\r\n'
        b'--x\r\nContent-Disposition: form-data; name="files"; filename="ledger.txt"\r\n\r\n'
    )
    seen: list[list[bytes]] = []

    async def body() -> AsyncIterator[bytes]:
        yield head
        for start in range(0, len(secret), 256 * 1024):
            yield secret[start : start + 256 * 1024]
            # The server asks for the next piece once it has stored this one.
            seen.append(_open_temporary_files(spool_dir))
        yield b"\r\n--x--\r\n"

    response = await client.post(
        f"/api/v1/public/{slug}/reports",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 201, response.text
    held = [content for files in seen for content in files]
    assert any(len(content) > 1024 * 1024 for content in held)  # the upload went to disk
    assert not any(b"Ledger of bribes" in content for content in held)
    assert _open_temporary_files(spool_dir) == []  # closed with the request
