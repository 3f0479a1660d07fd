"""A stored file streams back whole, and a missing chunk anywhere stops it."""

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.models import Attachment, AttachmentChunk, Report
from app.services import attachments, reports
from tests.factories import verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
# 40 chunks of 64 KiB and a bit: more than two batches of the stream's queries.
CONTENT = bytes(range(256)) * (40 * 256 + 3)


async def _stored(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> tuple[Attachment, bytes]:
    """A report with one file, and the file's row with the report key the tracking code opens."""
    slug = (await verified_organisation(client, sessionmaker))["slug"]
    response = await client.post(
        f"/api/v1/public/{slug}/reports",
        data={"description": "The whole ledger.", "anonymous": "true"},
        files=[("files", ("ledger.bin", CONTENT, "application/octet-stream"))],
    )
    assert response.status_code == 201, response.text
    async with sessionmaker() as session:
        opened = await reports.open_by_code(session, settings, response.json()["tracking_code"])
        attachment = await session.scalar(
            select(Attachment).join(Report).where(Report.id == opened.report.id)
        )
    assert attachment is not None
    return attachment, opened.report_key


async def _read(sessionmaker: Sessionmaker, attachment: Attachment, key: bytes) -> bytes:
    return b"".join([c async for c in attachments.stream_file(sessionmaker, attachment, key)])


async def test_a_file_of_many_batches_streams_back_whole(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    attachment, key = await _stored(client, sessionmaker, settings)
    assert attachment.chunk_count == 41
    assert await _read(sessionmaker, attachment, key) == CONTENT


@pytest.mark.parametrize("index", [0, 20, 40])
async def test_a_missing_chunk_stops_the_stream(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings, index: int
) -> None:
    attachment, key = await _stored(client, sessionmaker, settings)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(AttachmentChunk).where(
                AttachmentChunk.attachment_id == attachment.id, AttachmentChunk.index == index
            )
        )
    with pytest.raises(crypto.CryptoError):
        await _read(sessionmaker, attachment, key)
