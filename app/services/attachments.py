"""Files of a report: stripped of metadata, encrypted in chunks under the report key, streamed."""

import asyncio
import itertools
import json
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

import anyio
import pypdf
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import StreamingResponse

from app import crypto
from app.config import Settings
from app.errors import InvalidInput, TooLarge
from app.i18n import N_
from app.models import Attachment, AttachmentChunk
from app.services import metadata

READ_SIZE = 64 * 1024
SAFE_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "pdf": "application/pdf"}
MAX_NAME_LENGTH = 200
CHUNKS_PER_INSERT = 16
FILE_WORK_SLOTS = 2
# What pypdf may unpack of one stream while parsing an upload; its defaults allow 75 MB each.
PDF_LIMITS = pypdf.Configuration(
    zlib_maximum_output_length=8 * 1024 * 1024,
    lzw_maximum_output_length=8 * 1024 * 1024,
    run_length_maximum_output_length=8 * 1024 * 1024,
    brotli_maximum_output_length=8 * 1024 * 1024,
    array_based_stream_maximum_output_length=8 * 1024 * 1024,
    stream_decoding_work_maximum_length=16 * 1024 * 1024,
)
_FILE_WORK_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class IncomingFile:
    """An uploaded file: its name as the client sent it and a readable binary file."""

    name: str
    file: BinaryIO


# Audio and video, by name or by first bytes: what a recording of an oral report would be.
RECORDING_SUFFIXES = (
    ".mp3", ".wav", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac", ".amr", ".wma",
    ".3gp", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi",
)  # fmt: skip
RECORDING_MAGIC = (b"ID3", b"OggS", b"fLaC", b"#!AMR", b"\x1aE\xdf\xa3", b"\xff\xfb", b"\xff\xf3")


def is_recording(upload: IncomingFile) -> bool:
    """Whether an upload is an audio or video file (a recording), by its name or its bytes."""
    head = upload.file.read(12)
    upload.file.seek(0)
    return (
        upload.name.lower().endswith(RECORDING_SUFFIXES)
        or head.startswith(RECORDING_MAGIC)
        or (head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "))
        or head[4:8] == b"ftyp"
    )


def _chunk_aad(attachment: Attachment) -> bytes:
    return b"attachment|" + attachment.report_id.bytes + attachment.id.bytes


def _meta_aad(attachment: Attachment) -> bytes:
    return b"attachment-meta|" + attachment.report_id.bytes + attachment.id.bytes


def _clean_name(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '"<>|:*?')
    return name.strip()[:MAX_NAME_LENGTH] or "file"


def _plaintext(upload: IncomingFile, limit: int) -> Iterator[bytes]:
    """The file's bytes, metadata stripped, refused once past `limit`."""
    head = upload.file.read(READ_SIZE)
    kind = metadata.detect_kind(head)
    size = 0

    def pieces() -> Iterator[bytes]:
        nonlocal size
        piece = head
        while piece:
            size += len(piece)
            if size > limit:
                raise TooLarge(N_("A file is larger than the limit."), code="file_too_large")
            yield piece
            piece = upload.file.read(READ_SIZE)

    if kind == "pdf":
        # PDF metadata can only be removed from the whole document: held in memory, bounded
        # by the per-file limit. Streams are copied still compressed; the few pypdf must
        # unpack to parse the file (object and cross-reference streams) are bounded, so a
        # deflate bomb among them is refused as a damaged file instead of filling the memory.
        document = b"".join(pieces())
        with pypdf.apply_configuration(PDF_LIMITS):
            cleaned = metadata.strip_pdf(document)
        del document
        yield cleaned
        return
    stripper = metadata.stripper_for(kind) if kind else None
    if stripper is None:
        yield from pieces()
        return
    for piece in pieces():
        yield stripper.feed(piece)
    yield stripper.finish()


async def store_file(
    session: AsyncSession,
    settings: Settings,
    *,
    organisation_id: uuid.UUID,
    report_id: uuid.UUID,
    report_key: bytes,
    upload: IncomingFile,
    uploaded_by: str,
    message_id: uuid.UUID | None = None,
) -> Attachment:
    """Strip, encrypt and store one file chunk by chunk; the plaintext is never held whole."""
    attachment = Attachment(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        report_id=report_id,
        message_id=message_id,
        uploaded_by=uploaded_by,
        sealed_meta=b"",
    )
    head = upload.file.read(16)
    upload.file.seek(0)
    kind = metadata.detect_kind(head)
    meta = {"name": _clean_name(upload.name), "type": SAFE_TYPES.get(kind or "", "")}
    attachment.sealed_meta = crypto.seal(
        report_key, json.dumps(meta).encode(), _meta_aad(attachment)
    )
    session.add(attachment)
    await session.flush()
    size = 0

    def counted(pieces: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal size
        for piece in pieces:
            size += len(piece)
            yield piece

    index = 0
    try:
        plaintext = counted(_plaintext(upload, settings.max_file_bytes))
        sealed_chunks = crypto.encrypt_stream(report_key, plaintext, _chunk_aad(attachment))
        # Reading, cleaning and encrypting run in a worker thread, a batch at a time, so a large
        # file or a PDF being cleaned never stalls the event loop.
        while sealed := await anyio.to_thread.run_sync(
            _next_batch, sealed_chunks, limiter=_file_work_limiter()
        ):
            batch: list[dict[str, object]] = []
            for data in sealed:
                batch.append(
                    {
                        "id": uuid.uuid4(),
                        "attachment_id": attachment.id,
                        "index": index,
                        "data": data,
                    }
                )
                index += 1
            await _insert_chunks(session, batch)
    except metadata.MetadataError as exc:
        raise InvalidInput(
            N_("A file looks damaged and cannot be cleaned of its metadata."), code="bad_file"
        ) from exc
    attachment.size = size
    attachment.chunk_count = index
    attachment.complete = True
    await session.flush()
    return attachment


def _next_batch(sealed_chunks: Iterator[bytes]) -> list[bytes]:
    return list(itertools.islice(sealed_chunks, CHUNKS_PER_INSERT))


def _file_work_limiter() -> anyio.CapacityLimiter:
    """Files being cleaned and encrypted at once, per event loop (FILE_WORK_SLOTS)."""
    loop = asyncio.get_running_loop()
    limiter = _FILE_WORK_LIMITERS.get(loop)
    if limiter is None:
        limiter = _FILE_WORK_LIMITERS[loop] = anyio.CapacityLimiter(FILE_WORK_SLOTS)
    return limiter


async def _insert_chunks(session: AsyncSession, batch: list[dict[str, object]]) -> None:
    # Core inserts keep the chunks out of the session, so memory stays bounded by one batch.
    if batch:
        await session.execute(insert(AttachmentChunk), batch)
        batch.clear()


def read_meta(attachment: Attachment, report_key: bytes) -> dict[str, str]:
    """The file's name and content type."""
    meta: dict[str, str] = json.loads(
        crypto.open_sealed(report_key, attachment.sealed_meta, _meta_aad(attachment))
    )
    return meta


async def stream_file(
    sessionmaker: async_sessionmaker[AsyncSession], attachment: Attachment, report_key: bytes
) -> AsyncIterator[bytes]:
    """The decrypted bytes, one chunk at a time; CryptoError if anything was tampered with.

    Reads with a session of its own: a streamed response outlives the request's session.
    """
    last = attachment.chunk_count - 1
    aad = _chunk_aad(attachment)
    async with sessionmaker() as session:
        # A batch of chunks per query: one query per 64 KiB chunk made downloads query-bound.
        for first in range(0, attachment.chunk_count, CHUNKS_PER_INSERT):
            rows = await session.execute(
                select(AttachmentChunk.index, AttachmentChunk.data)
                .where(
                    AttachmentChunk.attachment_id == attachment.id,
                    AttachmentChunk.index >= first,
                    AttachmentChunk.index < first + CHUNKS_PER_INSERT,
                )
                .order_by(AttachmentChunk.index)
            )
            index = first
            for stored_index, sealed in rows:
                if stored_index != index:
                    raise crypto.CryptoError("missing chunk")
                yield crypto.open_chunk(report_key, sealed, aad, index, index == last)
                index += 1
            if index != min(first + CHUNKS_PER_INSERT, attachment.chunk_count):
                raise crypto.CryptoError("missing chunk")


def download_response(
    chunks: AsyncIterator[bytes], name: str, content_type: str, size: int
) -> StreamingResponse:
    """Always a download, never rendered by the browser, with the sanitised file name."""
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return StreamingResponse(
        chunks,
        media_type=content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(name, safe='')}",
            "Content-Length": str(size),
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
